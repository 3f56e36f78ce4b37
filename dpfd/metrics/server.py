"""GET /metrics over HTTP (aiohttp), for Prometheus to scrape dpfd and the controller."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
from collections.abc import Sequence

from aiohttp import web

from dpfd.metrics.exposition import CONTENT_TYPE, render
from dpfd.metrics.registry import REGISTRY, Registry

log = logging.getLogger(__name__)


def parse_listen(value: str) -> tuple[str, int]:
    """`IP:PORT` or `[IPv6]:PORT` to (host, port); ValueError saying what is wrong. Port 0: any free port."""
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]:")
        if not sep:
            raise ValueError(f"{value!r}: expected [IPv6]:PORT")
    else:
        host, sep, port_text = value.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"{value!r}: expected IP:PORT (an IPv6 address goes in brackets, as in [::1]:9465)")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{value!r}: {host!r} is not an IP address (names are not resolved)") from None
    if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
        raise ValueError(f"{value!r}: port {port_text!r} is not a number from 0 to 65535")
    return str(ip), int(port_text)


class MetricsServer:
    """Serves `registries` at /metrics on host:port until stopped: the process-wide one with dpf's instruments, and
    usually one of the component's own scrape-time metrics (so two components in one process do not collide)."""

    def __init__(self, listen: str, registries: Sequence[Registry] = (REGISTRY,)) -> None:
        self.host, self._port = parse_listen(listen)
        self.registries = tuple(registries)
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        """The bound port (the one the kernel chose when asked for port 0)."""
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}/metrics"

    async def start(self) -> None:
        """Bind and serve; OSError if the address cannot be bound."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            # Our own socket: its port is known at once, also when the kernel chose it.
            family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.host, self._port))
            except OSError:
                sock.close()
                raise
            self._port = int(sock.getsockname()[1])
            await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()

    async def _metrics(self, request: web.Request) -> web.Response:
        body = render(*self.registries).encode()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
