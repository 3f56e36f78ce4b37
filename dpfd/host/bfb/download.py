"""One URL's bytes into its partial file, hashed as they arrive, resuming where an earlier attempt stopped.

A resume sends `Range: bytes=<n>-` with `If-Range: <validator>`, so a server whose file changed answers 200 with the
whole new file (we start over) instead of splicing two versions. 416 means our partial already holds the whole file
(done) or more than the file (start over). The sha256 covers the partial bytes already on disk, hashed first.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from dpfd.host.bfb.errors import RESUMABLE, BfbFetchError, FetchReason, classify, disk_error, http_error
from dpfd.host.bfb.layout import CacheLayout, PartialMeta
from dpfd.metrics.instruments import BFB_DOWNLOAD_BYTES

log = logging.getLogger(__name__)

FLUSH_BYTES = 1 << 20  # buffered before a write: one thread hop per MiB, not per network chunk
_READ = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE = re.compile(r"^bytes \*/(\d+)$")

BytesCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class TransferSettings:
    """Timeouts and retry limits of one download."""

    connect_timeout: float
    idle_timeout: float
    max_resumes: int
    resume_delay: float


@dataclass
class TransferResult:
    """A complete, fsynced partial file: its digest, size, validators, and the bytes this fetch received."""

    sha256: str
    size: int
    etag: str | None
    last_modified: str | None
    bytes_received: int


class _Restart(Exception):
    """The partial bytes cannot be resumed: drop them and ask again for the whole file."""


class _Hasher:
    """sha256 of the bytes written to the partial file, fed from a worker thread."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def append(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            # Cut off a torn write, so the file holds exactly the bytes hashed so far.
            os.ftruncate(fd, self.size)
            raise
        self.digest.update(data)
        self.size += len(data)

    def hash_existing(self, path: str, size: int) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while self.size < size:
                block = os.read(fd, min(_READ, size - self.size))
                if not block:
                    break
                self.digest.update(block)
                self.size += len(block)
        finally:
            os.close(fd)


async def _to_thread_to_the_end(func: Callable[[int, bytes], None], fd: int, data: bytes) -> None:
    """Run func in a thread and wait for it even if cancelled meanwhile (then re-raise the cancellation):
    the caller closes `fd` afterwards, which must not happen under a running write."""
    job = asyncio.ensure_future(asyncio.to_thread(func, fd, data))
    cancelled = False
    while True:
        try:
            await asyncio.shield(job)
            break
        except asyncio.CancelledError:
            if job.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError


class Download:
    """Downloads one URL into `layout.partial(key)`; `run()` returns once the file is complete and synced."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        layout: CacheLayout,
        url: str,
        key: str,
        settings: TransferSettings,
        on_bytes: BytesCallback,
    ) -> None:
        self.session = session
        self.layout = layout
        self.url = url
        self.key = key
        self.settings = settings
        self.on_bytes = on_bytes
        self.received = 0  # bytes off the network in this fetch, over all attempts
        self._body_started = False  # this attempt got a 200/206 and began reading the body

    async def run(self) -> TransferResult:
        resumes = 0
        restarts = 0
        while True:
            before = self.received
            self._body_started = False
            try:
                return await self._attempt()
            except _Restart as why:
                # At most twice: a server that keeps contradicting itself is an error, not a loop.
                restarts += 1
                log.info("restarting download of %s: %s", self.url, why)
                try:
                    await asyncio.to_thread(self.layout.remove_partial, self.key)
                except OSError as e:
                    raise disk_error("remove the partial download", self.layout.partial(self.key), e) from e
                if restarts > 2:
                    raise BfbFetchError(FetchReason.HTTP_ERROR, f"{self.url}: {why}") from None
            except BfbFetchError as e:
                # Only a body that broke off is resumed; failing to connect or to get an answer is the caller's
                # to retry (with its own backoff), and reported at once.
                if not self._body_started or e.reason not in RESUMABLE or resumes >= self.settings.max_resumes:
                    raise
                resumes += 1
                log.info("resuming download of %s after %s (resume %d)", self.url, e, resumes)
                # After progress, resume at once. An attempt can add no byte even if the server sent some
                # (aiohttp discards what it buffered when the connection breaks): back off before the next.
                if self.received == before:
                    await asyncio.sleep(self.settings.resume_delay * resumes)

    async def _attempt(self) -> TransferResult:
        path = str(self.layout.partial(self.key))
        hasher = _Hasher()
        try:
            meta, offset = await asyncio.to_thread(self._resumable_state, path)
            if offset:
                await asyncio.to_thread(hasher.hash_existing, path, offset)
        except OSError as e:
            raise disk_error("read the partial download", path, e) from e
        headers = {"Accept-Encoding": "identity"}
        if offset and meta is not None and meta.validator:
            headers["Range"] = f"bytes={offset}-"
            headers["If-Range"] = meta.validator
        try:
            async with self.session.get(self.url, headers=headers) as resp:
                status = resp.status
                if status == 416 and offset:
                    return await self._unsatisfiable(resp, path, offset, hasher, meta)
                if status >= 300:
                    raise http_error(status, resp.reason, self.url)
                if status == 206:
                    if not offset:
                        raise _Restart("server sent part of the file (206) to a request for all of it")
                    total = self._check_content_range(resp.headers.get("Content-Range"), offset)
                elif status == 200:
                    if offset:
                        log.info("server sent all of %s again (the file changed or ranges are unsupported)", self.url)
                    offset = 0
                    hasher = _Hasher()
                    total = resp.content_length
                else:
                    raise http_error(status, resp.reason, self.url)
                fresh = PartialMeta(self.url, resp.headers.get("ETag"), resp.headers.get("Last-Modified"), total)
                try:
                    # Inline (a small unsynced file): during a thread hop the body could arrive and the
                    # connection break, and aiohttp then discards the body it buffered.
                    self.layout.write_partial_meta(self.key, fresh)
                except OSError as e:
                    raise disk_error("write the download record for", path, e) from e
                await self._stream(resp, path, offset, total, hasher)
        except (BfbFetchError, _Restart, asyncio.CancelledError):
            raise
        except Exception as e:
            raise classify(
                e, self.url, connect_timeout=self.settings.connect_timeout, idle_timeout=self.settings.idle_timeout
            ) from e
        if total is not None and hasher.size != total:
            raise BfbFetchError(
                FetchReason.CONNECTION_LOST,
                f"{self.url} ended after {hasher.size} of {total} bytes (connection closed)",
            )
        return TransferResult(hasher.digest.hexdigest(), hasher.size, fresh.etag, fresh.last_modified, self.received)

    def _resumable_state(self, path: str) -> tuple[PartialMeta | None, int]:
        """The partial's record and size, or (None, 0) after dropping bytes we could not safely resume."""
        meta = self.layout.read_partial_meta(self.key)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            size = 0
        if size and (meta is None or meta.url != self.url or not meta.validator):
            # Without a validator a resume could splice two versions of the file: start over.
            self.layout.remove_partial(self.key)
            return None, 0
        return meta, size

    def _check_content_range(self, header: str | None, offset: int) -> int | None:
        m = _CONTENT_RANGE.match(header or "")
        if m is None or int(m.group(1)) != offset:
            raise _Restart(f"asked for bytes from {offset}, server answered Content-Range {header!r}")
        return None if m.group(3) == "*" else int(m.group(3))

    async def _unsatisfiable(
        self, resp: aiohttp.ClientResponse, path: str, offset: int, hasher: _Hasher, meta: PartialMeta | None
    ) -> TransferResult:
        m = _UNSATISFIED_RANGE.match(resp.headers.get("Content-Range", ""))
        if m is None or int(m.group(1)) != offset:
            raise _Restart(
                f"server has no bytes from {offset} on (HTTP 416, Content-Range {resp.headers.get('Content-Range')!r})"
            )
        # Our partial already holds the whole file (a crash came between the last byte and the rename).
        etag = meta.etag if meta else None
        last_modified = meta.last_modified if meta else None
        await self._sync(path)
        return TransferResult(hasher.digest.hexdigest(), hasher.size, etag, last_modified, self.received)

    async def _stream(
        self, resp: aiohttp.ClientResponse, path: str, offset: int, total: int | None, hasher: _Hasher
    ) -> None:
        self._body_started = True
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if offset else os.O_TRUNC)
        try:
            fd = os.open(path, flags, 0o644)
        except OSError as e:
            raise disk_error("open the partial download", path, e) from e
        try:
            pending: list[bytes] = []
            buffered = 0
            async for chunk in resp.content.iter_any():
                self.received += len(chunk)
                BFB_DOWNLOAD_BYTES.inc(len(chunk))
                pending.append(chunk)
                buffered += len(chunk)
                if buffered >= FLUSH_BYTES:
                    await self._write(fd, path, hasher, pending)
                    pending, buffered = [], 0
                self.on_bytes(hasher.size + buffered, total)
            await self._write(fd, path, hasher, pending)
        except BaseException:
            # Keep what arrived (at most FLUSH_BYTES, written inline so nothing outlives the fd) for the next attempt.
            self._keep_quietly(fd, hasher, pending)
            raise
        finally:
            os.close(fd)
        self.on_bytes(hasher.size, total)
        await self._sync(path)

    async def _write(self, fd: int, path: str, hasher: _Hasher, pending: list[bytes]) -> None:
        if not pending:
            return
        data = b"".join(pending)
        pending.clear()  # from here on the bytes are the writer thread's: written whole, or cut off
        try:
            await _to_thread_to_the_end(hasher.append, fd, data)
        except OSError as e:
            raise disk_error("write the partial download", path, e) from e

    def _keep_quietly(self, fd: int, hasher: _Hasher, pending: list[bytes]) -> None:
        if not pending:
            return
        try:
            hasher.append(fd, b"".join(pending))
        except OSError as e:
            log.warning("could not keep %d received bytes of %s: %s", sum(map(len, pending)), self.url, e)
        pending.clear()

    async def _sync(self, path: str) -> None:
        def fsync() -> None:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

        try:
            await asyncio.to_thread(fsync)
        except OSError as e:
            raise disk_error("sync the partial download", path, e) from e
