"""Download progress as the host reports it, at a bounded rate."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

ProgressPhase = Literal["Downloading", "Ready", "Error"]


@dataclass(frozen=True)
class Progress:
    """Where one URL's download stands. `bytes_total` is None while the server has not said (no Content-Length)."""

    url: str
    bytes_done: int
    bytes_total: int | None
    phase: ProgressPhase


ProgressCallback = Callable[[Progress], None]


class ProgressFanout:
    """Hands progress to every caller waiting on one download, at most once per `interval` seconds and once per
    `min_bytes` new bytes while Downloading; phase changes always go out. A failing callback is logged, not raised:
    it must not break the download the other callers share."""

    def __init__(self, url: str, interval: float, min_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.interval = interval
        self.min_bytes = min_bytes
        self.clock = clock
        self.listeners: list[ProgressCallback] = []
        self.last: Progress | None = None
        self._last_at = float("-inf")

    def add(self, listener: ProgressCallback) -> None:
        self.listeners.append(listener)
        if self.last is not None:
            self._call(listener, self.last)  # a late joiner learns where the download is at once

    def discard(self, listener: ProgressCallback) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)

    def bytes(self, done: int, total: int | None) -> None:
        """A byte count from the transfer; passed on only if the rate limit allows."""
        now = self.clock()
        last = self.last
        too_soon = last is not None and (now - self._last_at < self.interval or done - last.bytes_done < self.min_bytes)
        if too_soon and last is not None and last.phase == "Downloading":
            return
        self.emit(Progress(self.url, done, total, "Downloading"), now)

    def emit(self, progress: Progress, now: float | None = None) -> None:
        """Pass `progress` to every listener now."""
        self.last = progress
        self._last_at = self.clock() if now is None else now
        for listener in list(self.listeners):
            self._call(listener, progress)

    def _call(self, listener: ProgressCallback, progress: Progress) -> None:
        try:
            listener(progress)
        except Exception:
            log.exception("BFB progress callback failed for %s", self.url)
