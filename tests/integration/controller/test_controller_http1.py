"""The lean HTTP/1.1 pool against real servers: aiohttp's, a raw asyncio one that misbehaves on purpose, and TLS."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from controller.kube.client import ApiError, KubeClient
from controller.kube.http1 import Http1Pool, ServerDisconnected
from controller.kube.resources import NODES

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AppServer:
    """An aiohttp server on a free port, counting connections and requests in flight."""

    def __init__(self) -> None:
        self.app = web.Application()
        self.connections: set[object] = set()
        self.in_flight = 0
        self.most_in_flight = 0
        self.busy = asyncio.Event()  # set once `busy_at` requests are in flight together
        self.busy_at = 1
        self.port = 0
        self._runner: web.AppRunner | None = None

    def route(self, method: str, path: str, handler: Handler) -> None:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.connections.add(request.transport)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if self.in_flight >= self.busy_at:
                self.busy.set()
            try:
                return await handler(request)
            finally:
                self.in_flight -= 1

        self.app.router.add_route(method, path, counted)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest_asyncio.fixture
async def server() -> AsyncIterator[AppServer]:
    srv = AppServer()
    yield srv
    await srv.stop()


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"method": request.method, "path": request.path_qs, "body": body.decode()})


async def chunked(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for part in (b'{"parts": ', b'["a", ', b'"b"]}'):
        await resp.write(part)
    await resp.write_eof()
    return resp


async def test_keep_alive_and_both_framings(server: AppServer) -> None:
    server.route("*", "/echo", echo)
    server.route("GET", "/chunked", chunked)
    await server.start()
    pool = Http1Pool("127.0.0.1", server.port)
    try:
        answer = await pool.request("PATCH", "/echo?x=1", {"Content-Type": "application/json"}, b'{"spec": 1}')
        assert answer.status == 200
        assert answer.body == b'{"method": "PATCH", "path": "/echo?x=1", "body": "{\\"spec\\": 1}"}'
        answer = await pool.request("GET", "/chunked", {})
        assert (answer.status, answer.body) == (200, b'{"parts": ["a", "b"]}')
        answer = await pool.request("GET", "/nowhere", {})
        assert answer.status == 404
        assert pool.connects == 1 and len(server.connections) == 1  # one kept-alive connection did it all
    finally:
        pool.close()


async def test_idle_connections_expire(server: AppServer) -> None:
    server.route("GET", "/echo", echo)
    await server.start()
    pool = Http1Pool("127.0.0.1", server.port, keepalive=0.0)
    try:
        for _ in range(2):
            assert (await pool.request("GET", "/echo", {})).status == 200
        assert pool.connects == 2 and len(server.connections) == 2
    finally:
        pool.close()


async def test_requests_in_flight_are_bounded_by_the_limit(server: AppServer) -> None:
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    server.route("GET", "/slow", slow)
    server.busy_at = 3
    await server.start()
    pool = Http1Pool("127.0.0.1", server.port, limit=3)
    try:
        calls = [asyncio.create_task(pool.request("GET", "/slow", {})) for _ in range(10)]
        await asyncio.wait_for(server.busy.wait(), 10)
        release.set()
        answers = await asyncio.gather(*calls)
        assert [a.body for a in answers] == [b"done"] * 10
        # Were the limit broken, all ten would have opened a connection at once and been in flight together.
        assert server.most_in_flight == 3 and pool.connects == 3
    finally:
        pool.close()


async def test_timeout_discards_the_connection(server: AppServer) -> None:
    release = asyncio.Event()

    async def stuck(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="late")

    server.route("GET", "/stuck", stuck)
    server.route("GET", "/echo", echo)
    await server.start()
    pool = Http1Pool("127.0.0.1", server.port, timeout=0.2)
    try:
        with pytest.raises(TimeoutError):
            await pool.request("GET", "/stuck", {})
        answer = await pool.request("GET", "/echo", {})  # a fresh connection: the old one may still answer
        assert answer.status == 200 and pool.connects == 2
    finally:
        release.set()
        pool.close()


class RawServer:
    """Answers the first request on each connection; on the second it closes without answering."""

    def __init__(self, first_answer: bytes) -> None:
        self.first_answer = first_answer
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(self.first_answer)
        await writer.drain()
        with contextlib.suppress(asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")  # the second request: dropped, as a server timing out idles does
        writer.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_a_dead_kept_alive_connection_is_retried_only_for_idempotent_requests() -> None:
    raw = RawServer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await raw.start()
    pool = Http1Pool("127.0.0.1", raw.port)
    try:
        assert (await pool.request("GET", "/a", {})).body == b"ok"
        assert (await pool.request("GET", "/b", {})).body == b"ok"  # resent on a new connection
        assert raw.connections == 2
        with pytest.raises(ServerDisconnected):
            await pool.request("PATCH", "/c", {}, b"{}")  # not resent: it may have been applied
        assert raw.connections == 2
    finally:
        pool.close()
        await raw.stop()


async def test_a_body_that_runs_until_close() -> None:
    async def answer_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_and_close, "127.0.0.1", 0)
    pool = Http1Pool("127.0.0.1", server.sockets[0].getsockname()[1])
    try:
        for _ in range(2):
            assert (await pool.request("GET", "/", {})).body == b"all of it"
        assert pool.connects == 2  # such a connection is never reused
    finally:
        pool.close()
        server.close()
        await server.wait_closed()


def make_cert(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=dpf-test",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_kube_client_over_tls_with_a_bearer_token(server: AppServer, tmp_path: Path) -> None:
    seen: list[str] = []

    async def node(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        if request.match_info["name"] != "worker-0":
            return web.json_response({"kind": "Status", "reason": "NotFound", "message": "gone"}, status=404)
        return web.json_response({"kind": "Node", "metadata": {"name": "worker-0"}})

    server.route("GET", "/api/v1/nodes/{name}", node)
    cert, key = make_cert(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    await server.start(server_tls)
    cluster = {"server": f"https://127.0.0.1:{server.port}", "certificate-authority": str(cert)}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": "u", "user": {"token": "secret-token"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    client = await KubeClient.from_kubeconfig(str(kubeconfig))
    try:
        assert (await client.get(NODES, "", "worker-0"))["metadata"]["name"] == "worker-0"
        with pytest.raises(ApiError) as err:
            await client.get(NODES, "", "worker-1")
        assert err.value.not_found and "gone" in str(err.value)
        assert seen == ["Bearer secret-token"] * 2
        assert len(server.connections) == 1  # both over one kept-alive TLS connection
    finally:
        await client.close()
