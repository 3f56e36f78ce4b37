"""A BFB download server for dpf-sim: any `GET /<name>.bfb` answers with a synthetic image (`bfb_image`).

Images are never stored: every byte range is computed from the name and size, so a fleet can "download" many
gigabytes for free. The server speaks what a real file server does (HEAD, single `Range` requests with 206/416,
`If-Range`, ETag, Last-Modified) and can misbehave on purpose for tests and demos: per-name faults answer with an
HTTP status, hang before answering, drop the connection or stall after N bytes, trickle at a set rate or flip one
byte.

In process: `handle = await start_bfb_server("127.0.0.1", 0, config=...)`, then `handle.url_for("doca")`.
From a shell: `python -m dpfd.sim.bfb_server --listen 127.0.0.1:8080 --size 8MiB --fault missing=404`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import re
import signal
import ssl
from collections import OrderedDict
from dataclasses import dataclass, field

from aiohttp import web

from dpfd.sim.bfb_image import image_range, image_size, trailer

log = logging.getLogger(__name__)

DEFAULT_BODY_SIZE = 8 << 20
CHUNK = 256 << 10
# Image bytes never change for a given name and size, so one fixed date is honest.
LAST_MODIFIED = "Mon, 02 Dec 2024 00:00:00 GMT"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_SIZE = re.compile(r"^(\d+)\s*(|k|kb|kib|m|mb|mib|g|gb|gib)$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


@dataclass
class Fault:
    """How the server misbehaves for one image name. Unset fields mean "behave"."""

    status: int | None = None  # answer GET and HEAD with this HTTP status (e.g. 404, 500)
    hang: bool = False  # accept the request and never answer
    drop_after: int | None = None  # close the connection after this many body bytes of a response
    drop_times: int | None = None  # how many responses drop_after applies to (None: every one)
    stall_after: int | None = None  # send this many body bytes of a response, then nothing (connection open)
    rate: int | None = None  # send at most this many bytes per second
    corrupt_at: int | None = None  # flip the byte at this image offset whenever it is sent


@dataclass
class BfbServerConfig:
    """What the server serves. Mutable while it runs: tests add faults or sizes between requests."""

    default_size: int = DEFAULT_BODY_SIZE  # body bytes of an image (the checksum trailer adds bfb_image.TRAILER_LEN)
    sizes: dict[str, int] = field(default_factory=dict)  # per-name body size
    faults: dict[str, Fault] = field(default_factory=dict)


@dataclass
class RequestRecord:
    """One request as the server saw it, for tests that count requests and bytes."""

    method: str
    name: str
    range: str | None
    status: int
    bytes_sent: int = 0
    started: float = 0.0  # loop time when the request arrived
    finished: float | None = None  # loop time when the handler ended (None while it runs)


@dataclass(frozen=True)
class ByteRange:
    """An inclusive-exclusive range [start, end) of an image."""

    start: int
    end: int


class Unsatisfiable(Exception):
    """The Range header names no byte of the image (answered with 416)."""


def parse_range(header: str | None, total: int) -> ByteRange | None:
    """The single byte range a `Range` header asks for, or None to send the whole image.

    Headers this server does not support (other units, several ranges, bad syntax) are ignored, as RFC 9110
    allows; a well-formed range that starts past the end raises Unsatisfiable.
    """
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, total - n), total)
    start = int(first)
    end = total if not last else int(last) + 1
    if last and end <= start:
        return None  # invalid (last < first): ignore the header
    if start >= total:
        raise Unsatisfiable(header)
    return ByteRange(start, min(end, total))


def parse_size(text: str) -> int:
    """A byte count such as `8388608`, `512KiB`, `8MiB` or `1G` (binary units)."""
    m = _SIZE.match(text.strip())
    if m is None:
        raise ValueError(f"invalid size {text!r}: expected a number of bytes, optionally with K, M or G (e.g. 8MiB)")
    return int(m.group(1)) * _UNITS[m.group(2)[:1].lower()]


def parse_fault(spec: str) -> tuple[str, Fault]:
    """`NAME=KIND[:ARG]` from the command line: 404, 500 (any status), hang, drop:BYTES[:TIMES], stall:BYTES,
    slow:BYTES_PER_S, corrupt:OFFSET."""
    name, sep, kind = spec.partition("=")
    if not sep or not name or not kind:
        raise ValueError(f"invalid fault {spec!r}: expected NAME=KIND[:ARG], e.g. missing=404 or flaky=drop:1MiB")
    word, _, arg = kind.partition(":")
    try:
        if word.isdigit():
            return name, Fault(status=int(word))
        if word == "hang" and not arg:
            return name, Fault(hang=True)
        if word == "drop":
            after, _, times = arg.partition(":")
            return name, Fault(drop_after=parse_size(after), drop_times=int(times) if times else None)
        if word == "stall":
            return name, Fault(stall_after=parse_size(arg))
        if word == "slow":
            return name, Fault(rate=parse_size(arg))
        if word == "corrupt":
            return name, Fault(corrupt_at=int(arg))
    except ValueError as e:
        raise ValueError(f"invalid fault {spec!r}: {e}") from None
    raise ValueError(
        f"invalid fault {spec!r}: kind must be an HTTP status, hang, drop:N[:TIMES], stall:N, slow:N or corrupt:N"
    )


def etag_for(name: str, body_size: int) -> str:
    """A strong ETag: the image is a function of its name and size."""
    return '"' + hashlib.sha256(f"{name}:{body_size}".encode()).hexdigest()[:32] + '"'


class _Images:
    """Trailers cost a pass over the whole body, so the few recently served ones are kept."""

    def __init__(self, keep: int = 16) -> None:
        self._keep = keep
        self._trailers: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    async def trailer(self, name: str, body_size: int) -> bytes:
        key = (name, body_size)
        tail = self._trailers.get(key)
        if tail is None:
            tail = await asyncio.to_thread(trailer, name, body_size)
            self._trailers[key] = tail
            while len(self._trailers) > self._keep:
                self._trailers.popitem(last=False)
        self._trailers.move_to_end(key)
        return tail


class BfbServer:
    """The aiohttp application and its bookkeeping; `start_bfb_server` runs one."""

    def __init__(self, config: BfbServerConfig | None = None) -> None:
        self.config = config or BfbServerConfig()
        self.requests: list[RequestRecord] = []
        self._drops: dict[str, int] = {}
        self._images = _Images()
        self.app = web.Application()
        self.app.router.add_get("/{path:.+}", self._serve)  # and HEAD

    def gets(self, name: str) -> list[RequestRecord]:
        """The GET requests for `name`, in arrival order."""
        return [r for r in self.requests if r.method == "GET" and r.name == name]

    def bytes_sent(self, name: str) -> int:
        """Body bytes sent for `name` over all requests."""
        return sum(r.bytes_sent for r in self.requests if r.name == name)

    def body_size(self, name: str, query_size: str | None = None) -> int:
        if query_size is not None:
            return parse_size(query_size)
        return self.config.sizes.get(name, self.config.default_size)

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if not path.endswith(".bfb") or len(path) <= len(".bfb"):
            return web.Response(status=404, text=f"not found: {request.path} (this server serves only *.bfb)\n")
        name = path[: -len(".bfb")]
        loop = asyncio.get_running_loop()
        record = RequestRecord(request.method, name, request.headers.get("Range"), 200, started=loop.time())
        self.requests.append(record)
        try:
            return await self._answer(request, name, record)
        finally:
            record.finished = loop.time()

    async def _answer(self, request: web.Request, name: str, record: RequestRecord) -> web.StreamResponse:
        fault = self.config.faults.get(name, Fault())
        if fault.hang:
            await asyncio.Event().wait()  # until the client gives up (the handler is cancelled when it closes)
        if fault.status is not None:
            record.status = fault.status
            return web.Response(status=fault.status, text=f"fault injected for {name}.bfb: HTTP {fault.status}\n")
        try:
            body_size = self.body_size(name, request.query.get("size"))
        except ValueError as e:
            record.status = 400
            return web.Response(status=400, text=f"{e}\n")
        total = image_size(body_size)
        etag = etag_for(name, body_size)
        headers = {"Accept-Ranges": "bytes", "ETag": etag, "Last-Modified": LAST_MODIFIED}
        try:
            wanted = parse_range(record.range, total)
        except Unsatisfiable:
            record.status = 416
            headers["Content-Range"] = f"bytes */{total}"
            return web.Response(status=416, headers=headers, text=f"range not satisfiable: image is {total} bytes\n")
        if_range = request.headers.get("If-Range")
        if wanted is not None and if_range is not None and if_range != etag and if_range != LAST_MODIFIED:
            wanted = None  # the client's partial copy is of another version: send the whole image
        span = wanted or ByteRange(0, total)
        response = web.StreamResponse(status=200 if wanted is None else 206, headers=headers)
        if wanted is not None:
            response.headers["Content-Range"] = f"bytes {span.start}-{span.end - 1}/{total}"
        response.content_length = span.end - span.start
        response.content_type = "application/octet-stream"
        record.status = response.status
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        tail = await self._images.trailer(name, body_size)
        await self._send(request, response, record, name, body_size, span, tail, fault)
        return response

    async def _send(
        self,
        request: web.Request,
        response: web.StreamResponse,
        record: RequestRecord,
        name: str,
        body_size: int,
        span: ByteRange,
        tail: bytes,
        fault: Fault,
    ) -> None:
        stop = span.end
        if fault.drop_after is not None and (fault.drop_times is None or self._drops.get(name, 0) < fault.drop_times):
            self._drops[name] = self._drops.get(name, 0) + 1
            stop = min(stop, span.start + fault.drop_after)
        stall = fault.stall_after is not None and span.start + fault.stall_after < stop
        if stall and fault.stall_after is not None:
            stop = span.start + fault.stall_after
        chunk = CHUNK if fault.rate is None else max(1, min(CHUNK, fault.rate // 10))
        loop = asyncio.get_running_loop()
        began = loop.time()
        pos = span.start
        while pos < stop:
            data = image_range(name, body_size, pos, min(stop, pos + chunk), tail)
            if fault.corrupt_at is not None and pos <= fault.corrupt_at < pos + len(data):
                flipped = bytearray(data)
                flipped[fault.corrupt_at - pos] ^= 0xFF
                data = bytes(flipped)
            await response.write(data)
            pos += len(data)
            record.bytes_sent += len(data)
            if fault.rate is not None:
                # Pace against the start, not per chunk, so the average rate holds whatever the loop does.
                ahead = (pos - span.start) / fault.rate - (loop.time() - began)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if stall:
            await asyncio.Event().wait()  # until the client gives up (the handler is cancelled when it closes)
        if stop < span.end and request.transport is not None:
            # Drop the connection mid-body: the client sees fewer bytes than Content-Length promised.
            request.transport.abort()
            raise asyncio.CancelledError


@dataclass
class BfbServerHandle:
    """A running server: its base URL, its bookkeeping (`server`) and `close()`."""

    server: BfbServer
    runner: web.AppRunner
    host: str
    port: int
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def config(self) -> BfbServerConfig:
        return self.server.config

    def url_for(self, name: str) -> str:
        """The URL of image `name` (without the `.bfb` suffix)."""
        return f"{self.url}/{name}.bfb"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_bfb_server(
    host: str = "127.0.0.1",
    port: int = 0,
    config: BfbServerConfig | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
) -> BfbServerHandle:
    """Serve synthetic BFBs on host:port (port 0: the kernel picks one; see `handle.port`), over HTTPS when
    `ssl_context` is given."""
    server = BfbServer(config)
    # handler_cancellation: a client that goes away ends its handler (hung and stalled ones included).
    runner = web.AppRunner(server.app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_host, bound_port = runner.addresses[0][:2]
    scheme = "https" if ssl_context is not None else "http"
    return BfbServerHandle(server, runner, str(bound_host), int(bound_port), scheme)


def _listen_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"invalid --listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def _name_size(text: str) -> tuple[str, int]:
    name, sep, size = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"invalid --name-size {text!r}: expected NAME=SIZE, e.g. big=1GiB")
    try:
        return name, parse_size(size)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _fault(text: str) -> tuple[str, Fault]:
    try:
        return parse_fault(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m dpfd.sim.bfb_server`."""
    p = argparse.ArgumentParser(prog="python -m dpfd.sim.bfb_server", description=__doc__.split("\n")[0])
    p.add_argument("--listen", type=_listen_address, default=("127.0.0.1", 0), help="HOST:PORT (default 127.0.0.1:0)")
    p.add_argument("--size", type=_size, default=DEFAULT_BODY_SIZE, help="body size of every image (default 8MiB)")
    p.add_argument("--name-size", type=_name_size, action="append", default=[], help="NAME=SIZE for one image")
    p.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        help="NAME=KIND: 404 (any status), hang, drop:BYTES[:TIMES], stall:BYTES, slow:BYTES_PER_S, corrupt:OFFSET",
    )
    return p


async def _serve_forever(config: BfbServerConfig, host: str, port: int) -> None:
    handle = await start_bfb_server(host, port, config)
    print(f"serving synthetic BFBs on {handle.url} (e.g. {handle.url_for('bf-bundle')})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await handle.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point: serve until SIGINT or SIGTERM."""
    args = build_parser().parse_args(argv)
    config = BfbServerConfig(default_size=args.size, sizes=dict(args.name_size), faults=dict(args.fault))
    host, port = args.listen
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(config, host, port))


if __name__ == "__main__":
    main()
