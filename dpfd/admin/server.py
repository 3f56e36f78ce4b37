"""AdminServer: dpfd's admin gRPC API on a local unix socket (default /run/dpfd/admin.sock), and optionally on TCP.

Served only to root, the daemon's own user and members of group ``dpf``: the socket file is mode 0660 and owned by
that group, and every call is checked against the caller's SO_PEERCRED credentials (see gate.py for how they reach
gRPC); anyone else gets PERMISSION_DENIED. On TCP only mutual TLS is spoken: a caller must present a certificate
signed by the configured CA. gRPC health and reflection are on.

    server = AdminServer("/run/dpfd/admin.sock", service=AdminService(members, status, ...))
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dpfd.admin.gate import CredentialGate
from dpfd.admin.peercred import Authorizer, resolve_group
from dpfd.admin.service import AdminService, MembersSource, StatusSource
from dpfd.admin.sockpath import SocketPath
from dpfd.host.dms.tls import TlsFiles
from dpfd.proto.dpf.admin.v1 import admin_pb2, admin_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "/run/dpfd/admin.sock"
SERVICE_NAME = admin_pb2.DESCRIPTOR.services_by_name["Admin"].full_name
_TCP_PEERS = ("ipv4:", "ipv6:")


class AdminServerError(Exception):
    """The admin socket cannot be served: its path is taken by a live server or by something not a socket."""


@dataclass(frozen=True)
class TcpListener:
    """The admin API on TCP too, mutual TLS only: ``listen`` is HOST:PORT (port 0: any free port)."""

    listen: str
    tls: TlsFiles


class AdminServer:
    def __init__(
        self,
        socket_path: str | os.PathLike[str] = DEFAULT_SOCKET,
        *,
        service: AdminService | None = None,
        members: MembersSource | None = None,
        status: StatusSource | None = None,
        group: str | int | None = "dpf",
        mode: int = 0o660,
        tcp: TcpListener | None = None,
    ) -> None:
        """``service``: what is served (default: an AdminService of ``members`` and ``status`` alone);
        ``members``: the gossip view (None when gossip is off: ListMembers answers FAILED_PRECONDITION);
        ``status``: what GetStatus answers; ``group``: the group (name or gid) whose members are served besides root;
        ``mode``: the socket file's permissions; ``tcp``: also listen on TCP with mTLS."""
        self.path = Path(socket_path)
        self._private_dir = self.path.parent / f".{self.path.name}.d"
        self._service = service or AdminService(members, status)
        self._group = group
        self._mode = mode
        self._tcp = tcp
        self.tcp_port: int | None = None  # the bound TCP port, once started with ``tcp``
        self._gid: int | None = None
        self._grpc: grpc.aio.Server | None = None
        self._gate: CredentialGate | None = None
        self._front: SocketPath | None = None
        self._inner: SocketPath | None = None
        self._inode: int | None = None  # of the socket file we made: stop() removes only that one

    async def start(self) -> None:
        self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        self._front = _socket_path(self.path)
        try:
            await _claim(self._front)
        except BaseException:
            self._front.close()  # the path is someone else's: leave everything there as it is
            self._front = None
            raise
        try:
            self._prepare_private_dir()
            self._inner = _socket_path(self.inner_path)
        except BaseException:
            await self.stop()
            raise
        self._gid = resolve_group(self._group)
        authorizer = Authorizer(self._gid)
        server = grpc.aio.server(interceptors=[_PeerGuard(self._denial)])
        admin_pb2_grpc.add_AdminServicer_to_server(self._service, server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection([SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        server.add_insecure_port(f"unix:{self._inner.name}")
        try:
            if self._tcp is not None:
                self.tcp_port = _add_tls_port(server, self._tcp)
            await server.start()
        except BaseException:
            await server.stop(None)
            await self.stop()
            raise
        self._grpc = server
        try:
            listener = self._bind_front()
            self._gate = CredentialGate(listener, self._inner.name, authorizer)
            await self._gate.start()
        except BaseException:
            await self.stop()
            raise
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        where = {"socket": str(self.path)}
        if self._tcp is not None:
            where["tcp"] = f"{self._tcp.listen.rpartition(':')[0]}:{self.tcp_port}"
        log.info("admin API listening", extra=where)

    @property
    def inner_path(self) -> Path:
        """Where the gRPC server itself listens, behind the gate (tests show it refuses whoever bypasses the gate)."""
        return self._private_dir / "grpc.sock"

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
            self.inner_path.unlink()
        with contextlib.suppress(OSError):
            self._private_dir.rmdir()
        for p in (self._front, self._inner):
            if p is not None:
                p.close()
        self._front = self._inner = None

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
            self.inner_path.unlink()  # left by a crashed server: the front socket was just found dead

    def _bind_front(self) -> socket.socket:
        assert self._front is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self._front.name)
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

    def _denial(self, context: grpc.aio.ServicerContext) -> str | None:
        """Why the caller of this call may not be served; None when it may."""
        peer = context.peer()
        if peer.startswith(_TCP_PEERS):
            if self._tcp is None:
                return "the admin API is not served on TCP"
            # The handshake already required a client certificate signed by the CA; make sure it was TLS at all.
            auth = context.auth_context()
            if auth.get("transport_security_type") == [b"ssl"] and auth.get("x509_pem_cert"):
                return None
            return "the admin API on TCP needs a client certificate signed by its CA"
        gate = self._gate
        admission = gate.admission(peer) if gate is not None else None
        if admission is None:
            return "the admin API is served only through its socket"
        if admission.allowed:
            return None
        group = self._group if self._gid is not None else "dpf (absent on this machine)"
        return f"uid {admission.cred.uid} may not use the dpfd admin API: run as root or as a member of group {group}"


def _socket_path(path: Path) -> SocketPath:
    try:
        return SocketPath(path)
    except (ValueError, OSError) as e:
        raise AdminServerError(f"{path}: cannot be a unix socket: {e}") from None


def _add_tls_port(server: grpc.aio.Server, tcp: TcpListener) -> int:
    try:
        credentials = tcp.tls.server_credentials()
    except ValueError as e:
        raise AdminServerError(f"admin TCP listener {tcp.listen}: {e}") from None
    try:
        port = int(server.add_secure_port(tcp.listen, credentials))
    except RuntimeError as e:
        raise AdminServerError(f"admin TCP listener {tcp.listen}: cannot bind: {e}") from None
    if port == 0:
        raise AdminServerError(f"admin TCP listener {tcp.listen}: cannot bind")
    return port


async def _claim(sock: SocketPath) -> None:
    """Make ``sock`` free for a new socket: remove a dead server's socket, refuse a live one or a non-socket."""
    path = sock.path
    try:
        st = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise AdminServerError(f"{path} exists and is not a socket; refusing to replace it")
    try:
        async with asyncio.timeout(2.0):
            _, writer = await asyncio.open_unix_connection(sock.name)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("admin socket: removing %s left by a server that is gone", path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    except TimeoutError:
        raise AdminServerError(f"{path}: a server holds it but does not accept; refusing to replace it") from None
    writer.close()
    raise AdminServerError(f"{path}: another server is listening on it (is dpfd already running?)")


Denial = Callable[[grpc.aio.ServicerContext], str | None]


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
        why = denial(context)
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
