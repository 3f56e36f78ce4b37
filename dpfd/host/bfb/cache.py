"""The host's BFB cache: each URL is downloaded once, however many DPUs (and reconcilers) ask for it.

`fetch(url)` returns at once when the URL's image is on disk, and otherwise downloads it (one download per URL
shared by every concurrent caller, a bounded number of URLs at a time), verifies it and files it under its sha256.
Failures raise `BfbFetchError` with a condition reason. The cache has no size bound: the host keeps the images its
intents name, and `gc(keep)` drops the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import ssl
import time
from collections.abc import Callable
from contextvars import Context
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp
from yarl import URL

from dpfd.agent.statefile import fsync_dir, remove_durably
from dpfd.host.bfb.download import Download, TransferResult, TransferSettings
from dpfd.host.bfb.errors import BfbFetchError, FetchReason, disk_error
from dpfd.host.bfb.layout import CacheLayout, IndexEntry, url_key
from dpfd.host.bfb.progress import Progress, ProgressCallback, ProgressFanout
from dpfd.metrics.instruments import BFB_CACHE_HITS, BFB_DOWNLOAD_SECONDS, BFB_DOWNLOADS, BFB_DOWNLOADS_IN_PROGRESS

log = logging.getLogger(__name__)

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

SessionFactory = Callable[[], aiohttp.ClientSession]


@dataclass(frozen=True)
class CachedBfb:
    """An image in the cache. `bytes_received` is what this fetch took off the network (0 for a cache hit)."""

    url: str
    path: Path
    sha256: str
    size: int
    etag: str | None = None
    last_modified: str | None = None
    bytes_received: int = 0


@dataclass
class GcResult:
    """What `gc` removed."""

    urls: list[str] = field(default_factory=list)  # index entries dropped
    files: int = 0  # images and partial files deleted
    bytes_freed: int = 0


def validate_url(url: str) -> URL:
    """The parsed URL, or BfbFetchError(InvalidURL) saying what is wrong with it."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as e:
        raise BfbFetchError(FetchReason.INVALID_URL, f"invalid BFB URL {url!r}: {e}") from None
    if parsed.scheme not in ("http", "https"):
        raise BfbFetchError(FetchReason.INVALID_URL, f"invalid BFB URL {url!r}: the scheme must be http or https")
    if not parsed.host:
        raise BfbFetchError(FetchReason.INVALID_URL, f"invalid BFB URL {url!r}: no host name")
    try:
        parsed.port  # noqa: B018 -- a bad port only shows when asked for
    except ValueError as e:
        raise BfbFetchError(FetchReason.INVALID_URL, f"invalid BFB URL {url!r}: {e}") from None
    return parsed


def _expected_digest(value: str | None) -> str | None:
    if value is None:
        return None
    digest = value.strip().lower().removeprefix("sha256:")
    if not _SHA256.match(digest):
        raise ValueError(f"expected_sha256 must be 64 hexadecimal digits (optionally prefixed sha256:), got {value!r}")
    return digest


class _Flight:
    """One download in progress, shared by every caller of `fetch` for its URL."""

    def __init__(self, url: str, expected: str | None, fanout: ProgressFanout) -> None:
        self.url = url
        self.expected = expected
        self.fanout = fanout
        self.waiters = 0
        self.task: asyncio.Task[CachedBfb] | None = None

    async def join(self, on_progress: ProgressCallback | None) -> CachedBfb:
        assert self.task is not None
        if on_progress is not None:
            self.fanout.add(on_progress)
        self.waiters += 1
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            me = asyncio.current_task()
            if self.task.cancelled() and (me is None or not me.cancelling()):
                # The download was stopped for everyone (remove/close), not this caller: say so as a failure.
                raise BfbFetchError(
                    FetchReason.CANCELLED,
                    f"download of {self.url} was stopped (removed from the cache or cache closed)",
                ) from None
            raise
        finally:
            self.waiters -= 1
            if on_progress is not None:
                self.fanout.discard(on_progress)
            if self.waiters == 0 and not self.task.done():
                # Every caller gave up (cancelled): stop downloading; the partial stays for a later resume.
                self.task.cancel()

    async def settle(self) -> None:
        """Wait for the download to end, however it ends."""
        assert self.task is not None
        with contextlib.suppress(BaseException):
            await asyncio.shield(self.task)


class BfbCache:
    """A content-addressed cache of BFB images under `root`, filled over HTTP(S).

    `connect_timeout` bounds connecting (TCP and TLS); `idle_timeout` bounds any wait for data from the server.
    A body that breaks off (connection lost, or no data for `idle_timeout`) is resumed from where it stopped, up
    to `max_resumes` times within one fetch (at once after progress, else after `resume_delay` x resume seconds).
    Failing to connect or to get an answer is raised at once: the caller retries with its own backoff. `ssl_context` sets TLS trust (default: the system's); `session_factory`
    replaces the HTTP client session entirely (it should not decompress, and the cache closes it in `close`).
    """

    def __init__(
        self,
        root: Path,
        *,
        max_parallel: int = 2,
        connect_timeout: float = 30.0,
        idle_timeout: float = 60.0,
        max_resumes: int = 5,
        resume_delay: float = 1.0,
        progress_interval: float = 0.5,
        progress_min_bytes: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        session_factory: SessionFactory | None = None,
    ) -> None:
        if max_parallel < 1:
            raise ValueError(f"max_parallel must be at least 1, got {max_parallel}")
        for name, value in (("connect_timeout", connect_timeout), ("idle_timeout", idle_timeout)):
            if not value > 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if max_resumes < 0 or resume_delay < 0 or progress_interval < 0 or progress_min_bytes < 0:
            raise ValueError("max_resumes, resume_delay, progress_interval and progress_min_bytes must not be negative")
        self.layout = CacheLayout(root)
        self.root = self.layout.root
        self.settings = TransferSettings(connect_timeout, idle_timeout, max_resumes, resume_delay)
        self.progress_interval = progress_interval
        self.progress_min_bytes = progress_min_bytes
        self._ssl_context = ssl_context
        self._session_factory = session_factory
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(max_parallel)
        self._max_parallel = max_parallel
        self._flights: dict[str, _Flight] = {}
        # Held while files move between partial/, sha256/ and urls/, so gc never sees a half-filed image.
        self._filing = asyncio.Lock()
        self._closed = False

    async def __aenter__(self) -> BfbCache:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every download (their partial files stay) and close the HTTP session."""
        self._closed = True
        flights = list(self._flights.values())
        for flight in flights:
            if flight.task is not None:
                flight.task.cancel()
        for flight in flights:
            await flight.settle()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def fetch(
        self, url: str, *, expected_sha256: str | None = None, on_progress: ProgressCallback | None = None
    ) -> CachedBfb:
        """The cached image of `url`, downloading it first if needed. Raises BfbFetchError (with a reason) on
        failure, ValueError for a malformed `expected_sha256`."""
        if self._closed:
            raise RuntimeError("the BFB cache is closed")
        validate_url(url)
        expected = _expected_digest(expected_sha256)
        while True:
            flight = self._flights.get(url)
            if flight is None:
                # No await between the lookup and registering the flight: no second download can slip in.
                hit = self._lookup(url, expected)
                if hit is not None:
                    BFB_CACHE_HITS.inc()
                    if on_progress is not None:
                        on_progress(Progress(url, hit.size, hit.size, "Ready"))
                    return hit
                flight = self._start(url, expected)
            elif flight.expected != expected:
                # A download checking for another digest: let it finish, then look again.
                await flight.settle()
                continue
            return await flight.join(on_progress)

    def path_for(self, url: str) -> Path | None:
        """Where the image of `url` is, if it is cached and whole; None otherwise."""
        hit = self._lookup(url, None)
        return hit.path if hit is not None else None

    async def remove(self, url: str) -> bool:
        """Forget `url`: stop its download, delete its partial and index entry, and its image unless another URL
        gives the same bytes. True if there was anything to remove."""
        key = url_key(url)
        flight = self._flights.get(url)
        if flight is not None and flight.task is not None:
            flight.task.cancel()
            await flight.settle()
        async with self._filing:
            try:
                # In the loop, not a thread: no fetch of this URL can start while its files go.
                return self._remove_files(key)
            except OSError as e:
                raise disk_error("remove the cached image of", url, e) from e

    async def gc(self, keep: set[str]) -> GcResult:
        """Drop every image, index entry and partial download whose URL is not in `keep` (URLs being downloaded
        right now are left alone)."""
        async with self._filing:
            # In the loop, not a thread: no download can start (and write a partial) while gc looks.
            kept = {url_key(u) for u in keep} | {url_key(u) for u in self._flights}
            try:
                return self._collect(kept)
            except OSError as e:
                raise disk_error("clean up the BFB cache in", self.root, e) from e

    # -- internals --

    def _lookup(self, url: str, expected: str | None) -> CachedBfb | None:
        key = url_key(url)
        try:
            entry = self.layout.read_index(key)
        except OSError as e:
            raise disk_error("read the cache index entry", self.layout.index_path(key), e) from e
        if entry is None or entry.url != url:
            return None
        if expected is not None and entry.sha256 != expected:
            return None  # cached bytes are not the ones asked for: download again (and check)
        path = self.layout.blob(entry.sha256)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            size = -1
        except OSError as e:
            raise disk_error("inspect the cached image", path, e) from e
        if size != entry.size:
            # The image vanished or was cut: forget it and download again, as DPF does for a missing file.
            log.warning(
                "cached image of %s is missing or has %d bytes, not %d: downloading it again", url, size, entry.size
            )
            return None
        return CachedBfb(url, path, entry.sha256, entry.size, entry.etag, entry.last_modified)

    def _start(self, url: str, expected: str | None) -> _Flight:
        fanout = ProgressFanout(url, self.progress_interval, self.progress_min_bytes)
        flight = _Flight(url, expected, fanout)
        # A fresh context: the download is the URL's, shared by every caller, not the first caller's (whose object
        # its log lines would otherwise name).
        flight.task = asyncio.create_task(self._download(flight), name=f"bfb-download {url}", context=Context())
        self._flights[url] = flight

        def forget(_: asyncio.Task[CachedBfb]) -> None:
            if self._flights.get(url) is flight:
                del self._flights[url]

        flight.task.add_done_callback(forget)
        return flight

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            if self._session_factory is not None:
                self._session = self._session_factory()
            else:
                timeout = aiohttp.ClientTimeout(
                    total=None,
                    connect=self.settings.connect_timeout,
                    sock_connect=self.settings.connect_timeout,
                    sock_read=self.settings.idle_timeout,
                )
                connector = aiohttp.TCPConnector(
                    limit=self._max_parallel * 2, ssl=self._ssl_context if self._ssl_context is not None else True
                )
                self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False)
        return self._session

    async def _download(self, flight: _Flight) -> CachedBfb:
        url, key, fanout = flight.url, url_key(flight.url), flight.fanout
        BFB_DOWNLOADS_IN_PROGRESS.inc()
        try:
            async with self._slots:
                started = time.monotonic()
                try:
                    await asyncio.to_thread(self.layout.ensure)
                except OSError as e:
                    raise disk_error("create the BFB cache directories under", self.root, e) from e
                fanout.emit(Progress(url, 0, None, "Downloading"))
                download = Download(self._http(), self.layout, url, key, self.settings, fanout.bytes)
                result = await download.run()
                cached = await self._file(flight, key, result)
        except BfbFetchError as e:
            BFB_DOWNLOADS.labels(e.reason.value).inc()
            done = fanout.last.bytes_done if fanout.last else 0
            total = fanout.last.bytes_total if fanout.last else None
            fanout.emit(Progress(url, done, total, "Error"))
            log.info("BFB download failed: %s", e)
            raise
        finally:
            BFB_DOWNLOADS_IN_PROGRESS.dec()
        BFB_DOWNLOADS.labels("success").inc()
        BFB_DOWNLOAD_SECONDS.observe(time.monotonic() - started)
        fanout.emit(Progress(url, cached.size, cached.size, "Ready"))
        return cached

    async def _file(self, flight: _Flight, key: str, result: TransferResult) -> CachedBfb:
        """Move a finished partial to sha256/<digest> and index it; a checksum mismatch deletes it instead."""
        url = flight.url
        async with self._filing:
            if flight.expected is not None and result.sha256 != flight.expected:
                try:
                    await asyncio.to_thread(self.layout.remove_partial, key)
                except OSError as e:
                    raise disk_error("discard the mismatched download", self.layout.partial(key), e) from e
                raise BfbFetchError(
                    FetchReason.CHECKSUM_MISMATCH,
                    f"sha256 of {url} is {result.sha256}, expected {flight.expected} ({result.size} bytes; download discarded)",
                )
            try:
                path = await asyncio.to_thread(self._commit, key, url, result)
            except OSError as e:
                raise disk_error("store the downloaded image of", url, e) from e
        return CachedBfb(
            url, path, result.sha256, result.size, result.etag, result.last_modified, result.bytes_received
        )

    def _commit(self, key: str, url: str, result: TransferResult) -> Path:
        partial = self.layout.partial(key)
        blob = self.layout.blob(result.sha256)
        try:
            same = blob.stat().st_size == result.size
        except FileNotFoundError:
            same = False
        if same:
            os.unlink(partial)  # another URL already brought these exact bytes
        else:
            os.chmod(partial, 0o644)
            os.replace(partial, blob)  # the partial was fsynced; rename is atomic
            fsync_dir(self.layout.blobs)
        self.layout.write_index(IndexEntry(url, result.sha256, result.size, result.etag, result.last_modified))
        self.layout.remove_partial(key)
        return blob

    def _remove_files(self, key: str) -> bool:
        removed = False
        entry = self.layout.read_index(key)
        for path in self._partial_files({key}, invert=False):
            removed |= remove_durably(path, durable=False)
        removed |= self.layout.remove_index(key)
        if entry is not None and not any(e.sha256 == entry.sha256 for e in self.layout.index_entries()):
            removed |= remove_durably(self.layout.blob(entry.sha256))
        return removed

    def _collect(self, kept: set[str]) -> GcResult:
        result = GcResult()
        live: set[str] = set()
        for entry in self.layout.index_entries():
            if url_key(entry.url) in kept:
                live.add(entry.sha256)
            else:
                self.layout.remove_index(url_key(entry.url))
                result.urls.append(entry.url)
        for path in self._partial_files(kept, invert=True):
            result.bytes_freed += _size(path)
            result.files += remove_durably(path, durable=False)
        for digest in self.layout.blob_digests() - live:
            path = self.layout.blob(digest)
            result.bytes_freed += _size(path)
            result.files += remove_durably(path)
        return result

    def _partial_files(self, keys: set[str], *, invert: bool) -> list[Path]:
        """Files under partial/ (with crash leftovers) whose key is in `keys`, or not in it if `invert`."""
        try:
            paths = list(self.layout.partials.iterdir())
        except FileNotFoundError:
            return []
        return [p for p in paths if (p.name.lstrip(".").split(".")[0] in keys) != invert]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
