"""The admin socket's front door: accept each connection ourselves, read its peer credentials, then relay its bytes
to the gRPC server listening on a private socket.

gRPC (C core, so grpc.aio too) never exposes the connection's file descriptor or the peer's SO_PEERCRED
(grpc/grpc#15511, #28755), and its Python API cannot adopt a socket we accepted. So the gate connects to the private
socket from a client socket bound to a fresh abstract name; gRPC reports that name as the call's peer
(``context.peer()`` is ``unix-abstract:<name>``), and ``admission(peer)`` maps it back to the credentials read here.

The private socket lives in a directory only the daemon's user can enter, so nothing reaches gRPC except through
the gate; a peer the gate did not relay has no identity and is refused by the server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from dataclasses import dataclass

from dpfd.admin.peercred import Authorizer, PeerCred, peer_cred

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class Admission:
    """Who a relayed connection comes from, and whether they may be served (decided once, when they connected)."""

    cred: PeerCred
    allowed: bool


class CredentialGate:
    """Relays connections from ``listener`` (a bound unix socket) to the unix socket at ``target``."""

    def __init__(self, listener: socket.socket, target: str, authorizer: Authorizer) -> None:
        self._listener = listener
        self._target = target
        self._authorizer = authorizer
        self._server: asyncio.Server | None = None
        self._peers: dict[str, Admission] = {}  # "unix-abstract:<name>" -> who it relays
        self._relays: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._accept, sock=self._listener)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._relays):
            task.cancel()
        if self._relays:
            await asyncio.gather(*self._relays, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            self._server = None

    def admission(self, peer: str) -> Admission | None:
        """Who is behind a gRPC peer string; None for anything the gate did not relay."""
        return self._peers.get(peer)

    @property
    def connections(self) -> int:
        return len(self._peers)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        name = ""
        inner: socket.socket | None = None
        inner_writer: asyncio.StreamWriter | None = None
        try:
            cred = peer_cred(writer.get_extra_info("socket"))
            admission = Admission(cred, self._authorizer.allows(cred))
            if not admission.allowed:
                log.warning("admin API: refusing uid %d (pid %d, gid %d)", cred.uid, cred.pid, cred.gid)
            inner, name = _bound_client()
            self._peers[name] = admission  # before any byte reaches gRPC
            await asyncio.get_running_loop().sock_connect(inner, self._target)
            inner_reader, inner_writer = await asyncio.open_unix_connection(sock=inner)
            await asyncio.gather(_pump(reader, inner_writer), _pump(inner_reader, writer))
        except (OSError, asyncio.IncompleteReadError) as e:
            log.debug("admin connection ended: %s", e)
        except asyncio.CancelledError:
            # stop() cancels relays; end quietly, as asyncio's server callback reads this task's exception
            pass
        finally:
            # Forget the name before the socket holding it closes: a name never maps to someone it no longer is.
            self._peers.pop(name, None)
            if inner_writer is not None:
                inner_writer.close()
            elif inner is not None:
                inner.close()
            writer.close()
            self._relays.discard(task)


def _bound_client() -> tuple[socket.socket, str]:
    """A non-blocking unix client socket bound to a fresh abstract name, and the peer string gRPC will show for it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        for attempt in range(5):
            name = f"dpfd-admin-{secrets.token_hex(12)}"
            try:
                sock.bind("\0" + name)
                break
            except OSError:  # taken (vanishingly unlikely): draw another
                if attempt == 4:
                    raise
    except BaseException:
        sock.close()
        raise
    return sock, f"unix-abstract:{name}"


async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Copy until ``src`` ends, then half-close ``dst`` so the other side sees the end too."""
    try:
        while data := await src.read(_CHUNK):
            dst.write(data)
            await dst.drain()
        if not dst.is_closing() and dst.can_write_eof():
            dst.write_eof()
    except (OSError, RuntimeError):  # reset, or (uvloop) the other side already closed the transport
        dst.close()
