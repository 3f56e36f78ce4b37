"""The /metrics HTTP endpoint on a real loopback socket, and the listen addresses it accepts."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from dpfd.metrics import Counter, Registry
from dpfd.metrics.parse import parse
from dpfd.metrics.server import MetricsServer, parse_listen


async def test_serves_every_registry_given_in_the_text_format() -> None:
    shared, own = Registry(), Registry()
    Counter("demo_shared_total", "from the shared registry", registry=shared).inc(2)
    Counter("demo_own_total", "from the component's own", registry=own).inc()
    server = MetricsServer("127.0.0.1:0", (shared, own))
    await server.start()
    try:
        assert server.port != 0 and server.url == f"http://127.0.0.1:{server.port}/metrics"
        async with aiohttp.ClientSession() as http:
            async with http.get(server.url) as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
                scrape = parse(await resp.text())
            async with http.get(server.url.removesuffix("metrics") + "other") as resp:
                assert resp.status == 404
    finally:
        await server.stop()
    assert scrape.value("demo_shared_total") == 2 and scrape.value("demo_own_total") == 1
    with socket.socket() as s:  # stopped: the port is free again
        s.bind(("127.0.0.1", server.port))


async def test_an_address_in_use_raises_oserror() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = MetricsServer(f"127.0.0.1:{taken.getsockname()[1]}", (Registry(),))
        with pytest.raises(OSError):
            await server.start()
        await server.stop()  # harmless when it never started


@pytest.mark.parametrize(
    ("value", "expected"),
    [("127.0.0.1:9465", ("127.0.0.1", 9465)), ("0.0.0.0:0", ("0.0.0.0", 0)), ("[::1]:9465", ("::1", 9465))],
)
def test_listen_addresses(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("localhost:9465", "not an IP address"),
        ("127.0.0.1", "expected IP:PORT"),
        ("::1:9465", "brackets"),
        ("[::1]9465", r"expected \[IPv6\]:PORT"),
        ("127.0.0.1:70000", "0 to 65535"),
        ("127.0.0.1:http", "0 to 65535"),
    ],
)
def test_bad_listen_addresses(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_listen(value)
