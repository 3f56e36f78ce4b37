"""The real gossip runtime: UDP datagrams and TCP request/reply streams on the running asyncio loop.

This is memberlist's ``NetTransport`` in asyncio form. One UDP socket and one TCP listener share a ``host:port``.
A stream carries exactly one frame each way (u32 big-endian length, then the bytes) and is closed after the reply.
Only the loop's public endpoint and stream APIs are used, so it runs unchanged on uvloop.

Addresses are IP literals (``"10.0.0.1:7946"``, ``"[fd00::1]:7946"``): nothing on the gossip path waits on DNS.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, cast

from dpfd.gossip.runtime import Handler, StreamCallback

log = logging.getLogger(__name__)

FRAME_HEADER_SIZE = 4
MAX_FRAME_SIZE = 2**32 - 1
DEFAULT_MAX_STREAM_SIZE = 4 * 1024 * 1024
DEFAULT_MAX_CONCURRENT_STREAMS = 128
DEFAULT_TCP_TIMEOUT = 10.0
# memberlist asks for a 2 MiB UDP receive buffer so a burst of gossip is not dropped by the kernel.
UDP_RECV_BUFFER_SIZE = 2 * 1024 * 1024
# Past this much unsent UDP data new datagrams are dropped, as UDP would, rather than queued without bound.
UDP_SEND_BACKLOG_LIMIT = 1024 * 1024
# With port 0 the UDP socket must get the port the kernel gave TCP; someone may already hold it for UDP.
BIND_ATTEMPTS = 8
# The StreamReader's buffer; frames larger than this are still read whole.
STREAM_READ_BUFFER = 256 * 1024


class FrameTooLargeError(Exception):
    """A frame's length prefix is above the configured ``max_stream_size``."""


@functools.lru_cache(maxsize=4096)
def parse_addr(addr: str) -> tuple[str, int]:
    """``"host:port"`` or ``"[v6host]:port"`` to ``(host, port)``; the host must be an IP literal (no DNS)."""
    if addr.startswith("["):
        end = addr.find("]")
        if end < 0:
            raise ValueError(f"bad gossip address {addr!r}: no ']' closes the IPv6 host")
        host, rest = addr[1:end], addr[end + 1 :]
        if not rest.startswith(":"):
            raise ValueError(f"bad gossip address {addr!r}: expected ':port' after ']'")
        port_text = rest[1:]
    else:
        host, sep, port_text = addr.rpartition(":")
        if not sep:
            raise ValueError(f"bad gossip address {addr!r}: expected host:port")
        if ":" in host:
            raise ValueError(f"bad gossip address {addr!r}: an IPv6 host goes in brackets, as in [::1]:7946")
    if not (port_text.isascii() and port_text.isdigit()):
        raise ValueError(f"bad gossip address {addr!r}: port {port_text!r} is not a number")
    port = int(port_text)
    if port > 65535:
        raise ValueError(f"bad gossip address {addr!r}: port {port} is above 65535")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"bad gossip address {addr!r}: {host!r} is not an IP address (names are not resolved)"
        ) from None
    if addr.startswith("[") and ip.version == 4:
        raise ValueError(f"bad gossip address {addr!r}: brackets are for IPv6 hosts only")
    return str(ip), port


def format_addr(host: str, port: int) -> str:
    """``(host, port)`` to the ``"host:port"`` form ``parse_addr`` reads, bracketing IPv6 hosts."""
    if not 0 <= port <= 65535:
        raise ValueError(f"bad gossip port {port}: must be 0..65535")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"bad gossip host {host!r}: not an IP address") from None
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def _sockaddr_to_addr(sockaddr: tuple[Any, ...]) -> str:
    """A kernel-given peer address as ``"host:port"``; IPv4 peers on a dual-stack socket keep their IPv4 form."""
    host, port = sockaddr[0], sockaddr[1]
    if ":" not in host:
        return f"{host}:{port}"
    if host.startswith("::ffff:") and "." in host:
        return f"{host[7:]}:{port}"
    return f"[{host}]:{port}"


def _frame(data: bytes) -> bytes:
    return len(data).to_bytes(FRAME_HEADER_SIZE, "big") + data


@dataclass(slots=True)
class TransportCounters:
    """Running totals since start; payload bytes, frame headers not included."""

    packets_sent: int = 0
    packets_received: int = 0
    packet_bytes_sent: int = 0
    packet_bytes_received: int = 0
    # streams: requests we sent that got a reply, and requests we received and handed to the handler
    streams_sent: int = 0
    streams_received: int = 0
    stream_bytes_sent: int = 0
    stream_bytes_received: int = 0
    streams_refused_busy: int = 0
    # streams that failed either way: refused, reset, timed out, oversized, closed without a reply
    stream_errors: int = 0
    # datagrams that could not be sent: unreachable, not permitted, bad address, backlog full, after close
    send_errors: int = 0


class _PacketProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: Callable[[bytes, tuple[Any, ...]], None], on_error: Callable[[Exception], None]):
        self._on_datagram = on_datagram
        self._on_error = on_error

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        self._on_error(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.error("gossip UDP socket lost: %r", exc)


def _bind_sockets(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A TCP and a UDP socket bound to the same port: TCP first, so port 0 lets the kernel choose."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # getaddrinfo carries an IPv6 scope id (fe80::1%eth0) into the socket address.
    sockaddr = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)[0][4]
    last_error: OSError | None = None
    for _ in range(BIND_ATTEMPTS if port == 0 else 1):
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            tcp.bind(sockaddr)
        except OSError as exc:
            tcp.close()
            raise OSError(exc.errno, f"cannot bind gossip TCP on {format_addr(host, port)}: {exc.strerror}") from exc
        chosen = (sockaddr[0], tcp.getsockname()[1], *sockaddr[2:])
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if family == socket.AF_INET6:
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            udp.bind(chosen)
        except OSError as exc:
            udp.close()
            tcp.close()
            if port == 0 and exc.errno == errno.EADDRINUSE:
                last_error = exc
                continue
            where = format_addr(host, chosen[1])
            raise OSError(exc.errno, f"cannot bind gossip UDP on {where}: {exc.strerror}") from exc
        with suppress(OSError):  # the kernel caps it at net.core.rmem_max; a smaller buffer still works
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECV_BUFFER_SIZE)
        tcp.setblocking(False)
        udp.setblocking(False)
        return tcp, udp
    raise OSError(
        errno.EADDRINUSE, f"no port on {host} was free for both TCP and UDP after {BIND_ATTEMPTS} attempts"
    ) from last_error


class AsyncioRuntime:
    """``Runtime`` on real sockets. Create it, ``await start(handler, bind)``, and ``await close()`` when done.

    Every callback (timers, ``on_reply``, the handler) runs on the loop that called ``start``, never re-entrantly
    inside the runtime call that caused it. Network failures never raise: they are counted and logged at debug.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        max_stream_size: int = DEFAULT_MAX_STREAM_SIZE,
        max_concurrent_streams: int = DEFAULT_MAX_CONCURRENT_STREAMS,
        tcp_timeout: float = DEFAULT_TCP_TIMEOUT,
    ) -> None:
        if not 0 <= max_stream_size <= MAX_FRAME_SIZE:
            raise ValueError(f"max_stream_size must be 0..{MAX_FRAME_SIZE}, got {max_stream_size}")
        if max_concurrent_streams < 1:
            raise ValueError(f"max_concurrent_streams must be >= 1, got {max_concurrent_streams}")
        if tcp_timeout <= 0:
            raise ValueError(f"tcp_timeout must be > 0, got {tcp_timeout}")
        self.rng = random.Random(seed)
        self.counters = TransportCounters()
        self.max_stream_size = max_stream_size
        self.max_concurrent_streams = max_concurrent_streams
        self.tcp_timeout = tcp_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._handler: Handler | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_family = socket.AF_INET
        self._server: asyncio.Server | None = None
        self._bound_addr: str | None = None
        self._requests: set[asyncio.Task[bytes | None]] = set()
        self._inbound: set[asyncio.Task[None]] = set()
        # inbound streams still waiting for their request: close() cancels these, and lets replies finish
        self._inbound_reading: set[asyncio.Task[None]] = set()
        self._closing = False
        self._closed = asyncio.Event()

    # --- clock, timers, randomness ---

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        return self._loop if self._loop is not None else asyncio.get_running_loop()

    def now(self) -> float:
        return self._running_loop().time()

    def wall(self) -> float:
        return time.time()

    def call_later(self, delay: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        return self._running_loop().call_later(delay, fn)

    # --- lifecycle ---

    @property
    def bound_addr(self) -> str:
        """The ``"host:port"`` both sockets are bound to (the real port when started with port 0)."""
        if self._bound_addr is None:
            raise RuntimeError("AsyncioRuntime is not started")
        return self._bound_addr

    @property
    def inbound_streams(self) -> int:
        """Inbound streams being served now (at most ``max_concurrent_streams``)."""
        return len(self._inbound)

    async def start(self, handler: Handler, bind: str) -> None:
        """Bind UDP and TCP on ``bind`` (port 0: a free port, the same for both) and start delivering to ``handler``."""
        if self._loop is not None or self._closing:
            raise RuntimeError("AsyncioRuntime.start called twice")
        host, port = parse_addr(bind)
        loop = asyncio.get_running_loop()
        tcp_sock, udp_sock = _bind_sockets(host, port)
        self._loop = loop
        self._handler = handler
        self._udp_family = udp_sock.family
        try:
            self._server = await asyncio.start_server(self._serve_stream, sock=tcp_sock, limit=STREAM_READ_BUFFER)
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _PacketProtocol(self._on_datagram, self._on_udp_error), sock=udp_sock
            )
        except BaseException:
            if self._server is not None:
                self._server.close()
            tcp_sock.close()
            udp_sock.close()
            self._loop, self._handler, self._server = None, None, None
            raise
        self._bound_addr = format_addr(host, tcp_sock.getsockname()[1])
        log.info("gossip transport listening on %s (UDP and TCP)", self._bound_addr)

    async def close(self) -> None:
        """Stop listening, fail pending requests (``on_reply(None)``), let replies being written finish. Idempotent."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        if self._udp is not None:
            self._udp.close()
        for task in (*self._requests, *self._inbound_reading):
            task.cancel()
        pending = (*self._requests, *self._inbound)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        self._closed.set()

    def _require_started(self, what: str) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"AsyncioRuntime.{what} called before start()")
        return self._loop

    # --- datagrams ---

    def send_packet(self, addr: str, data: bytes) -> None:
        self._require_started("send_packet")
        udp = self._udp
        if self._closing or udp is None:
            self._count_send_error(addr, "the transport is closed")
            return
        try:
            target = self._udp_target(addr)
        except ValueError as exc:
            self._count_send_error(addr, str(exc))
            return
        # typeshed leaves it off DatagramTransport; both asyncio's and uvloop's have it
        if cast(asyncio.WriteTransport, udp).get_write_buffer_size() > UDP_SEND_BACKLOG_LIMIT:
            self._count_send_error(addr, "the send backlog is full")
            return
        # asyncio reports a failed sendto through error_received during the call; uvloop may raise instead.
        errors_before = self.counters.send_errors
        try:
            udp.sendto(data, target)
        except (OSError, ValueError) as exc:
            self._count_send_error(addr, repr(exc))
            return
        if self.counters.send_errors == errors_before:
            self.counters.packets_sent += 1
            self.counters.packet_bytes_sent += len(data)

    def _udp_target(self, addr: str) -> tuple[str, int]:
        host, port = parse_addr(addr)
        is_v6 = ":" in host
        if self._udp_family == socket.AF_INET6 and not is_v6:
            return f"::ffff:{host}", port
        if self._udp_family == socket.AF_INET and is_v6:
            raise ValueError(f"{addr} is IPv6 and the gossip socket is IPv4")
        return host, port

    def _count_send_error(self, addr: str, why: str) -> None:
        self.counters.send_errors += 1
        log.debug("gossip packet to %s not sent: %s", addr, why)

    def _on_udp_error(self, exc: Exception) -> None:
        self.counters.send_errors += 1
        log.debug("gossip UDP socket error: %r", exc)

    def _on_datagram(self, data: bytes, sockaddr: tuple[Any, ...]) -> None:
        self.counters.packets_received += 1
        self.counters.packet_bytes_received += len(data)
        if self._handler is None or self._closing:
            return
        from_addr = _sockaddr_to_addr(sockaddr)
        try:
            self._handler.on_packet(data, from_addr)
        except Exception:
            log.exception("gossip packet handler failed on a packet from %s", from_addr)

    # --- outbound streams ---

    def stream_request(self, addr: str, data: bytes, timeout: float, on_reply: StreamCallback) -> None:
        loop = self._require_started("stream_request")
        if self._closing:
            self.counters.stream_errors += 1
            loop.call_soon(self._deliver, on_reply, None, addr)
            return
        task = loop.create_task(self._exchange(addr, data, within=timeout))
        self._requests.add(task)
        # A done callback rather than code in the task: a task cancelled before its first step runs none of its code.
        task.add_done_callback(functools.partial(self._request_done, addr, on_reply))

    def _request_done(self, addr: str, on_reply: StreamCallback, task: asyncio.Task[bytes | None]) -> None:
        self._requests.discard(task)
        reply = None
        if not task.cancelled():
            exc = task.exception()
            if exc is None:
                reply = task.result()
            else:
                self.counters.stream_errors += 1
                log.error("gossip stream to %s failed unexpectedly", addr, exc_info=exc)
        self._deliver(on_reply, reply, addr)

    async def _exchange(self, addr: str, data: bytes, within: float) -> bytes | None:
        """Send one request frame and read one reply frame; None, counted and logged, on any failure."""
        try:
            host, port = parse_addr(addr)
        except ValueError as exc:
            self._stream_failed(addr, exc)
            return None
        if len(data) > self.max_stream_size:
            self._stream_failed(addr, FrameTooLargeError(f"request of {len(data)} bytes, limit {self.max_stream_size}"))
            return None
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(within):
                reader, writer = await asyncio.open_connection(host, port, limit=STREAM_READ_BUFFER)
                writer.write(_frame(data))
                await writer.drain()
                self.counters.stream_bytes_sent += len(data)
                reply = await self._read_frame(reader)
        except (OSError, TimeoutError, EOFError, FrameTooLargeError) as exc:
            if writer is not None:
                writer.transport.abort()
            self._stream_failed(addr, exc)
            return None
        except asyncio.CancelledError:
            if writer is not None:  # close() is waiting: do not wait for a slow peer to take our request
                writer.transport.abort()
            raise
        finally:
            if writer is not None:
                writer.close()
                with suppress(OSError):
                    await writer.wait_closed()
        self.counters.streams_sent += 1
        self.counters.stream_bytes_received += len(reply)
        return reply

    def _stream_failed(self, addr: str, exc: BaseException) -> None:
        self.counters.stream_errors += 1
        # (an EOFError is a peer that closed without answering)
        log.debug("gossip stream to %s failed: %r", addr, exc)

    def _deliver(self, on_reply: StreamCallback, reply: bytes | None, addr: str) -> None:
        try:
            on_reply(reply)
        except Exception:
            log.exception("gossip stream reply callback failed for a request to %s", addr)

    async def _read_frame(self, reader: asyncio.StreamReader) -> bytes:
        size = int.from_bytes(await reader.readexactly(FRAME_HEADER_SIZE), "big")
        if size > self.max_stream_size:
            raise FrameTooLargeError(f"frame of {size} bytes, limit {self.max_stream_size}")
        return await reader.readexactly(size)

    # --- inbound streams ---

    async def _serve_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _sockaddr_to_addr(writer.get_extra_info("peername"))
        task = asyncio.current_task()
        if self._closing or task is None or len(self._inbound) >= self.max_concurrent_streams:
            if not self._closing:
                self.counters.streams_refused_busy += 1
                log.debug("gossip stream from %s refused: %d streams in flight", peer, len(self._inbound))
            writer.transport.abort()
            return
        self._inbound.add(task)
        self._inbound_reading.add(task)
        try:
            try:
                async with asyncio.timeout(self.tcp_timeout):
                    request = await self._read_frame(reader)
            finally:
                self._inbound_reading.discard(task)
            self.counters.streams_received += 1
            self.counters.stream_bytes_received += len(request)
            reply = self._answer(request, peer)
            if reply is not None:
                async with asyncio.timeout(self.tcp_timeout):
                    writer.write(_frame(reply))
                    await writer.drain()
                self.counters.stream_bytes_sent += len(reply)
        except (OSError, TimeoutError, EOFError, FrameTooLargeError) as exc:
            self.counters.stream_errors += 1
            log.debug("gossip stream from %s failed: %r", peer, exc)
            writer.transport.abort()
        except asyncio.CancelledError:
            writer.transport.abort()
            if not self._closing:
                raise
        finally:
            self._inbound.discard(task)
            writer.close()
            with suppress(OSError):
                await writer.wait_closed()

    def _answer(self, request: bytes, peer: str) -> bytes | None:
        assert self._handler is not None
        try:
            reply = self._handler.on_stream(request, peer)
        except Exception:
            log.exception("gossip stream handler failed on a request from %s", peer)
            return None
        if reply is not None and len(reply) > self.max_stream_size:
            self.counters.stream_errors += 1
            log.warning(
                "gossip stream reply to %s not sent: %d bytes, limit %d", peer, len(reply), self.max_stream_size
            )
            return None
        return reply
