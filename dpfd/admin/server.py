"""AdminServer: dpfd's admin gRPC API on a local unix socket (default /run/dpfd/admin.sock).

Served only to root, the daemon's own user and members of group ``dpf``: the socket file is mode 0660 and owned by
that group, and every call is checked against the caller's SO_PEERCRED credentials (see gate.py for how they reach
gRPC); anyone else gets PERMISSION_DENIED. gRPC health and reflection are on.

    server = AdminServer("/run/dpfd/admin.sock", members=agent.members, status=status_from(node, role, version, t0, agent))
    await server.start()
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import socket
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dpfd.admin.gate import CredentialGate
from dpfd.admin.peercred import Authorizer, resolve_group
from dpfd.admin.service import AdminService, MembersSource, StatusSource
from dpfd.proto.dpf.admin.v1 import admin_pb2, admin_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/dpfd/admin.sock"
SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name
_MAX_UNIX_PATH = 107  # sun_path holds 108 bytes, the last one a NUL


class AdminServerError(Exception):
    """The admin socket cannot be served: its path is taken by a live server or by something not a socket."""


class AdminServer:
    def __init__(
        self,
        socket_path: str | os.PathLike[str] = DEFAULT_SOCKET,
        *,
        members: MembersSource | None = None,
        status: StatusSource | None = None,
        group: str | int | None = "dpf",
        mode: int = 0o660,
    ) -> None:
        """``members``: the gossip view (None when gossip is off: ListMembers answers FAILED_PRECONDITION);
        ``status``: what GetStatus answers; ``group``: the group (name or gid) whose members are served besides root;
        ``mode``: the socket file's permissions."""
        self.path = Path(socket_path)
        self._private_dir = self.path.parent / f".{self.path.name}.d"
        self._inner = self._private_dir / "grpc.sock"
        for p in (self.path, self._inner):
            if len(os.fsencode(p)) > _MAX_UNIX_PATH:
                raise AdminServerError(f"{p}: longer than the {_MAX_UNIX_PATH} bytes a unix socket path may have")
        self._members = members
        self._status = status
        self._group = group
        self._mode = mode
        self._gid: int | None = None
        self._grpc: grpc.aio.Server | None = None
        self._gate: CredentialGate | None = None
        self._inode: int | None = None  # of the socket file we made: stop() removes only that one

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        await _claim(self.path)
        self._prepare_private_dir()
        self._gid = resolve_group(self._group)
        authorizer = Authorizer(self._gid)
        server = grpc.aio.server(interceptors=[_PeerGuard(self._denial)])
        admin_pb2_grpc.add_AdminServicer_to_server(AdminService(self._members, self._status), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        server.add_insecure_port(f"unix:{self._inner}")
        await server.start()
        self._grpc = server
        try:
            listener = self._bind_front()
            self._gate = CredentialGate(listener, str(self._inner), authorizer)
            await self._gate.start()
        except BaseException:
            await self.stop()
            raise
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("admin API listening", extra={"socket": str(self.path)})

    async def stop(self, grace: float = 1.0) -> None:
        if self._gate is not None:
            await self._gate.stop()
            self._gate = None
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        if self._inode is not None:
            with contextlib.suppress(FileNotFoundError):
                if self.path.lstat().st_ino == self._inode:
                    self.path.unlink()
            self._inode = None
        with contextlib.suppress(FileNotFoundError):
            self._inner.unlink()
        with contextlib.suppress(OSError):
            self._private_dir.rmdir()

    async def __aenter__(self) -> AdminServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- internals ---------------------------------------------------------------------------------------------------

    def _prepare_private_dir(self) -> None:
        """The gRPC socket's directory: only the daemon's user may enter, so callers must come through the gate."""
        d = self._private_dir
        with contextlib.suppress(FileExistsError):
            d.mkdir(mode=0o700)
        st = d.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
            raise AdminServerError(f"{d}: not a directory owned by this user; remove it")
        os.chmod(d, 0o700)
        with contextlib.suppress(FileNotFoundError):
            self._inner.unlink()  # left by a crashed server: the front socket was just found dead

    def _bind_front(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(self.path))
            self._inode = self.path.lstat().st_ino
            os.chmod(self.path, self._mode)
            if self._gid is not None:
                try:
                    os.chown(self.path, -1, self._gid)
                except PermissionError:
                    log.warning(
                        "admin socket: cannot give %s to gid %d; only its owner may use it", self.path, self._gid
                    )
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def _denial(self, peer: str) -> str | None:
        """Why the caller behind ``peer`` may not be served; None when it may."""
        gate = self._gate
        admission = gate.admission(peer) if gate is not None else None
        if admission is None:
            return "the admin API is served only through its socket"
        if admission.allowed:
            return None
        group = self._group if self._gid is not None else "dpf (absent on this machine)"
        return f"uid {admission.cred.uid} may not use the dpfd admin API: run as root or as a member of group {group}"


async def _claim(path: Path) -> None:
    """Make ``path`` free for a new socket: remove a dead server's socket, refuse a live one or a non-socket."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise AdminServerError(f"{path} exists and is not a socket; refusing to replace it")
    try:
        async with asyncio.timeout(2.0):
            _, writer = await asyncio.open_unix_connection(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("admin socket: removing %s left by a server that is gone", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    except TimeoutError:
        raise AdminServerError(f"{path}: a server holds it but does not accept; refusing to replace it") from None
    writer.close()
    raise AdminServerError(f"{path}: another server is listening on it (is dpfd already running?)")


Denial = Callable[[str], str | None]


class _PeerGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Every method, health and reflection included, first checks who is calling."""

    def __init__(self, denial: Denial) -> None:
        self._denial = denial

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        return _guarded(handler, self._denial) if handler is not None else None


def _guarded(handler: Any, denial: Denial) -> grpc.RpcMethodHandler:
    async def check(context: grpc.aio.ServicerContext) -> None:
        why = denial(context.peer())
        if why is not None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, why)

    codec = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if handler.unary_unary is not None:
        unary_unary = handler.unary_unary

        async def guarded_unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            return await _settle(unary_unary(request, context))

        return grpc.unary_unary_rpc_method_handler(guarded_unary_unary, **codec)
    if handler.stream_unary is not None:
        stream_unary = handler.stream_unary

        async def guarded_stream_unary(requests: Any, context: grpc.aio.ServicerContext) -> Any:
            await check(context)
            return await _settle(stream_unary(requests, context))

        return grpc.stream_unary_rpc_method_handler(guarded_stream_unary, **codec)
    streaming = handler.unary_stream if handler.unary_stream is not None else handler.stream_stream

    async def guarded_streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        await check(context)
        result = streaming(request, context)
        if inspect.isasyncgen(result):
            async for item in result:
                yield item
        else:
            await _settle(result)  # a handler that writes through context.write

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(guarded_streaming, **codec)
    return grpc.stream_stream_rpc_method_handler(guarded_streaming, **codec)


async def _settle(result: Any) -> Any:
    return await result if inspect.isawaitable(result) else result
