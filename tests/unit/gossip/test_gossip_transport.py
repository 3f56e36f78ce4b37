"""AsyncioRuntime on real sockets on loopback: datagrams, request/reply streams, limits, failures and shutdown."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator

import pytest
import uvloop

from dpfd.gossip.transport import AsyncioRuntime, format_addr, parse_addr
from tests.waiting import eventually


class EchoHandler:
    """Records packets; answers a stream with ``echo:`` + request. ``boom`` raises, ``mute`` answers nothing."""

    def __init__(self) -> None:
        self.packets: list[tuple[bytes, str]] = []
        self.streams: list[tuple[bytes, str]] = []

    def on_packet(self, data: bytes, from_addr: str) -> None:
        if data == b"boom":
            raise RuntimeError("packet handler blew up")
        self.packets.append((data, from_addr))

    def on_stream(self, data: bytes, from_addr: str) -> bytes | None:
        self.streams.append((data, from_addr))
        if data == b"boom":
            raise RuntimeError("stream handler blew up")
        if data == b"mute":
            return None
        return b"echo:" + data


class Replies:
    """An ``on_reply`` that records every call and the thread it ran on."""

    def __init__(self) -> None:
        self.calls: list[bytes | None] = []
        self.threads: list[int] = []

    def __call__(self, reply: bytes | None) -> None:
        self.calls.append(reply)
        self.threads.append(threading.get_ident())

    async def one(self, within: float = 5.0) -> bytes | None:
        await eventually(lambda: self.calls, within=within, what="a stream reply")
        assert len(self.calls) == 1, self.calls
        return self.calls[0]


async def started(
    bind: str = "127.0.0.1:0",
    *,
    max_stream_size: int = 4 * 1024 * 1024,
    max_concurrent_streams: int = 128,
    tcp_timeout: float = 10.0,
) -> tuple[AsyncioRuntime, EchoHandler]:
    runtime = AsyncioRuntime(
        seed=1, max_stream_size=max_stream_size, max_concurrent_streams=max_concurrent_streams, tcp_timeout=tcp_timeout
    )
    handler = EchoHandler()
    await runtime.start(handler, bind)
    return runtime, handler


@pytest.fixture
async def pair() -> AsyncIterator[tuple[AsyncioRuntime, EchoHandler, AsyncioRuntime, EchoHandler]]:
    a, a_handler = await started()
    b, b_handler = await started()
    yield a, a_handler, b, b_handler
    await a.close()
    await b.close()


async def silent_server() -> tuple[asyncio.Server, str]:
    """A TCP server that accepts and never answers, holding each connection until the peer goes."""

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    return server, format_addr("127.0.0.1", server.sockets[0].getsockname()[1])


async def closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed the connection, whether with a FIN or, unread bytes pending, a reset."""
    try:
        return await asyncio.wait_for(reader.read(), 5.0) == b""
    except ConnectionResetError:
        return True


async def round_trips(a: AsyncioRuntime, b: AsyncioRuntime, b_handler: EchoHandler) -> None:
    a.send_packet(b.bound_addr, b"hello")
    await eventually(lambda: b_handler.packets, what="the datagram")
    assert b_handler.packets == [(b"hello", a.bound_addr)]  # UDP leaves from the bound socket
    replies = Replies()
    a.stream_request(b.bound_addr, b"ping", 5.0, replies)
    assert await replies.one() == b"echo:ping"


async def test_packet_and_stream_round_trip(
    pair: tuple[AsyncioRuntime, EchoHandler, AsyncioRuntime, EchoHandler],
) -> None:
    a, _, b, b_handler = pair
    await round_trips(a, b, b_handler)
    assert b_handler.streams[0][1].startswith("127.0.0.1:")
    assert (a.counters.packets_sent, a.counters.packet_bytes_sent) == (1, 5)
    assert (b.counters.packets_received, b.counters.packet_bytes_received) == (1, 5)
    assert (a.counters.streams_sent, a.counters.stream_bytes_sent, a.counters.stream_bytes_received) == (1, 4, 9)
    assert (b.counters.streams_received, b.counters.stream_bytes_received, b.counters.stream_bytes_sent) == (1, 4, 9)
    assert a.counters.stream_errors == b.counters.stream_errors == 0


def test_round_trip_under_uvloop() -> None:
    async def scenario() -> None:
        a, _ = await started()
        b, b_handler = await started()
        try:
            await round_trips(a, b, b_handler)
            a.send_packet("255.255.255.255:9", b"x")  # no SO_BROADCAST: EACCES, counted, not raised
            a.send_packet("[::1]:9", b"x")  # IPv6 from an IPv4 socket
            assert a.counters.send_errors == 2
        finally:
            await a.close()
            await b.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario())


async def test_large_stream_round_trip(pair: tuple[AsyncioRuntime, EchoHandler, AsyncioRuntime, EchoHandler]) -> None:
    a, _, b, _ = pair
    request = bytes(range(256)) * 8192  # 2 MiB, well past the stream read buffer
    replies = Replies()
    a.stream_request(b.bound_addr, request, 10.0, replies)
    assert await replies.one(within=10.0) == b"echo:" + request


async def test_tcp_and_udp_share_the_chosen_port() -> None:
    runtime, _ = await started()
    try:
        host, port = parse_addr(runtime.bound_addr)
        assert (host, port != 0) == ("127.0.0.1", True)
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            with socket.socket(socket.AF_INET, kind) as probe, pytest.raises(OSError):
                probe.bind((host, port))
    finally:
        await runtime.close()


async def test_fixed_port_taken_for_udp_is_a_clear_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        port = squatter.getsockname()[1]
        with pytest.raises(OSError, match=rf"cannot bind gossip UDP on 127\.0\.0\.1:{port}"):
            await AsyncioRuntime().start(EchoHandler(), f"127.0.0.1:{port}")


async def test_stream_to_a_closed_port_fails_fast(
    pair: tuple[AsyncioRuntime, EchoHandler, AsyncioRuntime, EchoHandler],
) -> None:
    a, _, _, _ = pair
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        replies = Replies()
        a.stream_request(format_addr("127.0.0.1", bound_not_listening.getsockname()[1]), b"ping", 30.0, replies)
        assert await replies.one(within=2.0) is None
    assert a.counters.stream_errors == 1


async def test_stream_times_out_when_the_peer_never_answers(
    pair: tuple[AsyncioRuntime, EchoHandler, AsyncioRuntime, EchoHandler],
) -> None:
    a, _, _, _ = pair
    server, addr = await silent_server()
    async with server:
        loop = asyncio.get_running_loop()
        started_at = loop.time()
        replies = Replies()
        a.stream_request(addr, b"ping", 0.3, replies)
        assert await replies.one(within=3.0) is None
        assert 0.25 <= loop.time() - started_at < 2.0
    assert a.counters.stream_errors == 1


async def test_peer_closing_without_a_reply_gives_none(
    pair: tuple[AsyncioRuntime, EchoHandler, AsyncioRuntime, EchoHandler],
) -> None:
    a, _, b, b_handler = pair
    replies = Replies()
    a.stream_request(b.bound_addr, b"mute", 5.0, replies)
    assert await replies.one() is None
    assert b_handler.streams == [(b"mute", b_handler.streams[0][1])]


async def test_oversized_inbound_frame_is_refused() -> None:
    runtime, handler = await started(max_stream_size=1024)
    try:
        host, port = parse_addr(runtime.bound_addr)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write((2048).to_bytes(4, "big") + b"x" * 64)
        await writer.drain()
        assert await closed_by_peer(reader)
        writer.close()
        assert runtime.counters.stream_errors == 1
        assert handler.streams == []
    finally:
        await runtime.close()


async def test_oversized_reply_and_request_are_refused_by_the_requester() -> None:
    small, _ = await started(max_stream_size=16)
    big, big_handler = await started()
    try:
        replies = Replies()
        small.stream_request(big.bound_addr, b"0123456789abcdef", 5.0, replies)  # 16 bytes: a 21-byte echo
        assert await replies.one() is None
        too_big = Replies()
        small.stream_request(big.bound_addr, b"x" * 17, 5.0, too_big)
        assert await too_big.one() is None
        assert len(big_handler.streams) == 1
        assert small.counters.stream_errors == 2
    finally:
        await small.close()
        await big.close()


async def test_busy_limit_closes_extra_connections() -> None:
    runtime, handler = await started(max_concurrent_streams=2)
    try:
        host, port = parse_addr(runtime.bound_addr)
        holders = [await asyncio.open_connection(host, port) for _ in range(2)]
        await eventually(lambda: runtime.inbound_streams == 2, what="two streams in flight")
        reader, writer = await asyncio.open_connection(host, port)
        assert await closed_by_peer(reader)
        writer.close()
        assert runtime.counters.streams_refused_busy == 1
        for _, holder in holders:
            holder.close()
        await eventually(lambda: runtime.inbound_streams == 0, what="the held slots freed")
        client, _ = await started()
        try:
            replies = Replies()
            client.stream_request(runtime.bound_addr, b"again", 5.0, replies)
            assert await replies.one() == b"echo:again"
        finally:
            await client.close()
        assert [data for data, _ in handler.streams] == [b"again"]
    finally:
        await runtime.close()


async def test_slow_inbound_peer_is_timed_out() -> None:
    runtime, _ = await started(tcp_timeout=0.3)
    try:
        host, port = parse_addr(runtime.bound_addr)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"\x00\x00")  # half a length prefix, then nothing
        assert await asyncio.wait_for(reader.read(), 5.0) == b""
        writer.close()
        assert runtime.counters.stream_errors == 1
        assert runtime.inbound_streams == 0
    finally:
        await runtime.close()


async def test_on_reply_runs_once_on_the_loop_never_inside_the_call(
    pair: tuple[AsyncioRuntime, EchoHandler, AsyncioRuntime, EchoHandler],
) -> None:
    a, _, b, _ = pair
    loop_thread = threading.get_ident()
    outcomes = {"reply": Replies(), "bad address": Replies(), "refused": Replies()}
    a.stream_request(b.bound_addr, b"ping", 5.0, outcomes["reply"])
    a.stream_request("not-an-address", b"ping", 5.0, outcomes["bad address"])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bound_not_listening:
        bound_not_listening.bind(("127.0.0.1", 0))
        a.stream_request(format_addr("127.0.0.1", bound_not_listening.getsockname()[1]), b"x", 5.0, outcomes["refused"])
        assert all(not replies.calls for replies in outcomes.values())
        await eventually(lambda: all(replies.calls for replies in outcomes.values()), what="every reply")
    # one more full exchange gives any stray second call time to show up
    await round_trips(a, b, pair[3])
    assert {name: replies.calls for name, replies in outcomes.items()} == {
        "reply": [b"echo:ping"],
        "bad address": [None],
        "refused": [None],
    }
    assert {thread for replies in outcomes.values() for thread in replies.threads} == {loop_thread}


async def test_close_fails_pending_requests_and_later_ones() -> None:
    runtime, _ = await started()
    server, addr = await silent_server()
    async with server:
        pending = [Replies() for _ in range(3)]
        for replies in pending:
            runtime.stream_request(addr, b"ping", 30.0, replies)
        await asyncio.wait_for(runtime.close(), 5.0)
        assert [replies.calls for replies in pending] == [[None]] * 3
        await runtime.close()  # idempotent
        late = Replies()
        runtime.stream_request(addr, b"ping", 30.0, late)
        assert late.calls == []
        assert await late.one() is None
        runtime.send_packet(addr, b"late")  # dropped and counted, never raised
        assert runtime.counters.send_errors == 1


async def test_close_does_not_wait_for_idle_inbound_connections() -> None:
    runtime, _ = await started(tcp_timeout=30.0)
    host, port = parse_addr(runtime.bound_addr)
    reader, writer = await asyncio.open_connection(host, port)
    await eventually(lambda: runtime.inbound_streams == 1, what="the idle stream in flight")
    await asyncio.wait_for(runtime.close(), 5.0)
    assert runtime.inbound_streams == 0
    assert await asyncio.wait_for(reader.read(), 5.0) == b""
    writer.close()


async def test_handler_exceptions_are_logged_and_survived(
    pair: tuple[AsyncioRuntime, EchoHandler, AsyncioRuntime, EchoHandler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _, b, b_handler = pair
    caplog.set_level(logging.ERROR, logger="dpfd.gossip.transport")
    a.send_packet(b.bound_addr, b"boom")
    boom = Replies()
    a.stream_request(b.bound_addr, b"boom", 5.0, boom)
    assert await boom.one() is None

    def raising_callback(reply: bytes | None) -> None:
        raise RuntimeError("callback blew up")

    a.stream_request(b.bound_addr, b"x", 5.0, raising_callback)
    await eventually(
        lambda: sum("blew up" in str(r.exc_info[1]) for r in caplog.records if r.exc_info) == 3,
        what="three logged failures",
    )
    messages = [r.getMessage() for r in caplog.records]
    assert any("packet from" in m and a.bound_addr in m for m in messages), messages
    assert any("stream handler failed on a request from 127.0.0.1:" in m for m in messages), messages
    await round_trips(a, b, b_handler)  # both directions still work


async def test_send_errors_are_counted_not_raised(
    pair: tuple[AsyncioRuntime, EchoHandler, AsyncioRuntime, EchoHandler],
) -> None:
    a, _, _, _ = pair
    a.send_packet("255.255.255.255:9", b"x")  # no SO_BROADCAST: EACCES
    a.send_packet("[::1]:9", b"x")  # IPv6 from an IPv4 socket
    a.send_packet("localhost:9", b"x")  # names are not resolved
    a.send_packet("127.0.0.1:99999", b"x")
    assert a.counters.send_errors == 4
    assert a.counters.packets_sent == 0


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback here")
async def test_ipv6_loopback_round_trip() -> None:
    a, _ = await started("[::1]:0")
    b, b_handler = await started("[::1]:0")
    try:
        assert a.bound_addr.startswith("[::1]:")
        await round_trips(a, b, b_handler)
        assert b_handler.streams[0][1].startswith("[::1]:")
    finally:
        await a.close()
        await b.close()


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 here")
async def test_dual_stack_runtime_talks_to_ipv4_peers_in_ipv4_form() -> None:
    dual, dual_handler = await started("[::]:0")
    v4, v4_handler = await started()
    try:
        dual.send_packet(v4.bound_addr, b"to v4")
        await eventually(lambda: v4_handler.packets, what="the datagram from the dual-stack socket")
        _, dual_port = parse_addr(dual.bound_addr)
        v4.send_packet(f"127.0.0.1:{dual_port}", b"to dual")
        await eventually(lambda: dual_handler.packets, what="the datagram to the dual-stack socket")
        assert dual_handler.packets == [(b"to dual", v4.bound_addr)]  # not [::ffff:127.0.0.1]:port
        assert v4_handler.packets[0][1] == f"127.0.0.1:{dual_port}"
    finally:
        await dual.close()
        await v4.close()


async def test_clock_timers_and_seeded_rng() -> None:
    runtime = AsyncioRuntime(seed=42)
    fired: list[float] = []
    runtime.call_later(0.01, lambda: fired.append(runtime.now()))
    runtime.call_later(0.01, lambda: fired.append(-1.0)).cancel()
    start = runtime.now()
    await eventually(lambda: fired, what="the timer")
    assert fired[0] >= start and len(fired) == 1
    assert runtime.wall() > 1.6e9
    same_seed = AsyncioRuntime(seed=42)
    assert [runtime.rng.random() for _ in range(3)] == [same_seed.rng.random() for _ in range(3)]


def test_calls_before_start_are_programming_errors() -> None:
    runtime = AsyncioRuntime()
    with pytest.raises(RuntimeError, match="before start"):
        runtime.send_packet("127.0.0.1:1", b"x")
    with pytest.raises(RuntimeError, match="not started"):
        _ = runtime.bound_addr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:7946", ("127.0.0.1", 7946)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:7946", ("::1", 7946)),
        ("[fd00:0::0001]:1", ("fd00::1", 1)),
        ("[fe80::1%eth0]:7946", ("fe80::1%eth0", 7946)),
    ],
)
def test_parse_addr(text: str, expected: tuple[str, int]) -> None:
    assert parse_addr(text) == expected
    assert parse_addr(format_addr(*expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected host:port"),
        ("127.0.0.1", "expected host:port"),
        ("127.0.0.1:", "port '' is not a number"),
        ("127.0.0.1:x", "port 'x' is not a number"),
        ("127.0.0.1:-1", "port '-1' is not a number"),
        ("127.0.0.1:+1", "port '\\+1' is not a number"),
        ("127.0.0.1:70000", "port 70000 is above 65535"),
        ("::1:7946", "an IPv6 host goes in brackets"),
        ("[::1]7946", "expected ':port' after ']'"),
        ("[::1:7946", "no ']' closes the IPv6 host"),
        ("[127.0.0.1]:7946", "brackets are for IPv6 hosts only"),
        ("gossip.example:7946", "is not an IP address"),
        (":7946", "'' is not an IP address"),
    ],
)
def test_parse_addr_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_addr(text)


@pytest.mark.parametrize(("host", "port"), [("127.0.0.1", 65536), ("127.0.0.1", -1), ("gossip.example", 1)])
def test_format_addr_errors(host: str, port: int) -> None:
    with pytest.raises(ValueError, match="bad gossip"):
        format_addr(host, port)
