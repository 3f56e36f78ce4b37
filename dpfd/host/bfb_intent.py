"""Host role, kind BFB: download every BFB into this host's cache before any DPU needs it, and say how it went.

The controller sends each BFB to every host. The host fetches it into its content-addressed cache (one download
per URL, shared with the DPUs' Pending phase) and reports Downloading (with progress), Ready (sha256, size,
fileName) or Error (a Ready=False condition whose reason is the FetchReason). A failed download is retried with
exponential backoff; a Ready image that vanished from the cache is fetched again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dpfd.agent.backoff import Backoff
from dpfd.agent.reconciler import AgentLink, Kick
from dpfd.api.conditions import Condition
from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.host.bfb.cache import BfbCache, CachedBfb
from dpfd.host.bfb.errors import BfbFetchError
from dpfd.host.bfb.progress import Progress as DownloadProgress

KIND = "BFB"
PHASE_DOWNLOADING = "Downloading"
PHASE_READY = "Ready"
PHASE_ERROR = "Error"
COND_READY = "Ready"
REASON_DOWNLOADED = "Downloaded"
REASON_DOWNLOADING = "Downloading"
REASON_FAILED = "DownloadFailed"  # anything that is not a BfbFetchError


@dataclass
class _Fetch:
    url: str
    task: asyncio.Task[CachedBfb] | None = None
    progress: dict[str, Any] = field(default_factory=lambda: {"downloaded": 0, "size": None})
    result: CachedBfb | None = None
    reason: str = ""
    message: str = ""
    attempts: int = 0
    retry_at: float = 0.0


class BfbReconciler:
    """Owns the host's BfbCache (the DPU provisioner shares it) and closes it on shutdown."""

    kind = KIND

    def __init__(
        self,
        node: str,
        cache: BfbCache,
        *,
        retry: Backoff | None = None,
        progress_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.node = node
        self.cache = cache
        self.retry = retry or Backoff(base=5.0, cap=300.0)
        self.progress_interval = progress_interval
        self.clock = clock
        self._kick: Kick = lambda ref, delay: None
        self._fetches: dict[ObjectRef, _Fetch] = {}

    def bind(self, link: AgentLink) -> None:
        self._kick = link.kick

    async def reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None:
        if intent is None or intent.deleting:
            # The image stays cached: a DPU may still be flashing it, and the cache's gc decides what goes.
            await self._stop(ref)
            return None
        url = str(intent.spec.get("url") or "")
        f = self._fetches.get(ref)
        if f is None or f.url != url:
            await self._stop(ref)
            f = self._fetches[ref] = _Fetch(url)
        if f.task is not None and f.task.done():
            self._consume(f)
        if f.result is not None and self.cache.path_for(url) is None:
            f.result = None  # removed from the cache since (gc, disk trouble): fetch again
        if f.result is not None:
            return self._report(intent, PHASE_READY, True, REASON_DOWNLOADED, "",
                                {"sha256": f.result.sha256, "size": f.result.size, "fileName": self._file_name(intent)})  # fmt: skip
        if f.task is None and f.reason:
            left = f.retry_at - self.clock()
            if left > 0:
                self._kick(ref, left)
                return self._report(intent, PHASE_ERROR, False, f.reason,
                                    f"{f.message} (attempt {f.attempts}, retrying in {left:.0f}s)",
                                    {"attempts": f.attempts})  # fmt: skip
        if f.task is None:
            f.task = asyncio.get_running_loop().create_task(self._fetch(ref, f), name=f"BFB {ref.name}")
        self._kick(ref, self.progress_interval)  # report the progress while it downloads
        return self._report(intent, PHASE_DOWNLOADING, False, REASON_DOWNLOADING, f"downloading {url}",
                            {"progress": dict(f.progress)})  # fmt: skip

    async def _fetch(self, ref: ObjectRef, f: _Fetch) -> CachedBfb:
        def progress(p: DownloadProgress) -> None:
            f.progress = {"downloaded": p.bytes_done, "size": p.bytes_total}

        try:
            return await self.cache.fetch(f.url, on_progress=progress)
        finally:
            self._kick(ref, 0.0)

    def _consume(self, f: _Fetch) -> None:
        task, f.task = f.task, None
        assert task is not None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            f.result = task.result()
            f.reason = f.message = ""
            f.attempts = 0
            return
        f.attempts += 1
        if isinstance(exc, BfbFetchError):
            f.reason, f.message = str(exc.reason), exc.message
        else:
            f.reason, f.message = REASON_FAILED, f"{type(exc).__name__}: {exc}"
        f.retry_at = self.clock() + self.retry.delay(f.attempts)

    @staticmethod
    def _file_name(intent: Intent) -> str:
        return str(intent.spec.get("fileName") or f"{intent.ref.namespace}-{intent.ref.name}.bfb")

    def _report(self, intent: Intent, phase: str, ready: bool, reason: str, message: str,
                details: dict[str, Any]) -> Report:  # fmt: skip
        cond = Condition(type=COND_READY, status="True" if ready else "False", reason=reason, message=message[:32768],
                         observedGeneration=intent.generation)  # fmt: skip
        return Report(node=self.node, ref=intent.ref, uid=intent.uid, observedGeneration=intent.generation,
                      phase=phase, conditions=[cond], details=details)  # fmt: skip

    async def _stop(self, ref: ObjectRef) -> None:
        f = self._fetches.pop(ref, None)
        if f is not None and f.task is not None:
            f.task.cancel()  # the download itself stops only when no DPU waits on it too
            with contextlib.suppress(BaseException):
                await f.task

    async def close(self) -> None:
        for ref in list(self._fetches):
            await self._stop(ref)
        await self.cache.close()
