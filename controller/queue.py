"""A work queue with client-go's semantics, for asyncio.

* Per-key dedupe: a key added many times before a worker takes it is processed once.
* A key is never processed by two workers at once: re-adding a key that is being processed marks it
  dirty, and it goes back on the queue when the worker calls `done`.
* Rate-limited retries: `add_rate_limited` delays a key by the larger of its own exponential backoff
  (5 ms doubling up to 1000 s) and an overall token bucket (10/s, burst 100), like client-go's
  DefaultControllerRateLimiter. `forget` resets a key's backoff after a success.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from dpfd.metrics.instruments import RECONCILE_ERRORS, RECONCILE_SECONDS

K = TypeVar("K", bound=Hashable)

log = logging.getLogger(__name__)


class QueueShutDown(Exception):
    """Raised by `WorkQueue.get` once the queue is shut down and drained of waiters."""


class ItemExponentialBackoff(Generic[K]):
    """Per-key backoff: base * 2**failures, capped."""

    def __init__(self, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        # Avoid computing huge powers once the cap is reached.
        return self.cap if n >= 64 else min(self.cap, self.base * (2**n))

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)


class TokenBucket:
    """Overall retry limit: `qps` tokens a second, at most `burst` saved; `reserve` says how long to wait."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def reserve(self) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


class RateLimiter(Generic[K]):
    """The larger of the per-key backoff and the overall bucket (client-go's MaxOfRateLimiter)."""

    def __init__(self, backoff: ItemExponentialBackoff[K] | None = None, bucket: TokenBucket | None = None) -> None:
        self.backoff: ItemExponentialBackoff[K] = backoff or ItemExponentialBackoff()
        self.bucket = bucket or TokenBucket()

    def when(self, key: K) -> float:
        return max(self.backoff.when(key), self.bucket.reserve())

    def num_requeues(self, key: K) -> int:
        return self.backoff.num_requeues(key)

    def forget(self, key: K) -> None:
        self.backoff.forget(key)


class WorkQueue(Generic[K]):
    """Deduplicating, delaying, rate-limited queue of keys. Not thread-safe: one event loop only."""

    def __init__(self, name: str, rate_limiter: RateLimiter[K] | None = None) -> None:
        self.name = name
        self.rate_limiter: RateLimiter[K] = rate_limiter or RateLimiter()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()  # waiting to be processed (in _queue, or re-added while processing)
        self._processing: set[K] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._delayed: dict[K, asyncio.TimerHandle] = {}
        self._shutting_down = False
        self.processed = 0  # keys handed back with `done` (a metric, and a progress signal for tests)
        self._idle_event = asyncio.Event()
        self._idle_event.set()

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        self._idle_event.clear()
        if key in self._processing:
            return  # `done` puts it back; never two workers on one key
        self._queue.append(key)
        self._wake_one()

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` after `delay` seconds; if it is already waiting, keep the earlier of the two times."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        existing = self._delayed.get(key)
        if existing is not None:
            if existing.when() <= when:
                return
            existing.cancel()
        self._delayed[key] = loop.call_at(when, self._fire_delayed, key)

    def add_rate_limited(self, key: K) -> None:
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.num_requeues(key)

    async def get(self) -> K:
        """The next key; the caller must call `done(key)` when finished with it."""
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown(self.name)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                # If we were woken and then cancelled, pass the wake-up on so no key is stranded.
                if fut.done() and not fut.cancelled():
                    self._wake_one()
                raise
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def idle(self) -> bool:
        """Nothing queued and nothing being processed (delayed keys do not count)."""
        return not self._queue and not self._processing

    def done(self, key: K) -> None:
        self.processed += 1
        self._processing.discard(key)
        if key in self._dirty and not self._shutting_down:
            self._queue.append(key)
            self._wake_one()
        if self.idle():
            self._idle_event.set()

    async def wait_idle(self) -> None:
        """Until nothing is queued or being processed."""
        await self._idle_event.wait()

    def shut_down(self) -> None:
        """Stop accepting keys; waiting `get` calls raise QueueShutDown."""
        self._shutting_down = True
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        self._queue.clear()
        self._dirty.clear()
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    def _fire_delayed(self, key: K) -> None:
        self._delayed.pop(key, None)
        self.add(key)

    def _wake_one(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return


@dataclass(frozen=True)
class Result:
    """What a reconcile asks for next: nothing, a retry with backoff, or a retry after a fixed delay."""

    requeue: bool = False
    requeue_after: float | None = None


DONE = Result()


async def run_workers(
    queue: WorkQueue[K],
    reconcile: Callable[[K], Awaitable[Result]],
    workers: int,
    describe: Callable[[K], str] = str,
) -> None:
    """Run `workers` loops that take keys and reconcile them until the queue shuts down (or cancellation)."""

    async def worker() -> None:
        while True:
            try:
                key = await queue.get()
            except QueueShutDown:
                return
            started = time.monotonic()
            try:
                result = await reconcile(key)
            except asyncio.CancelledError:
                queue.done(key)
                raise
            except Exception as exc:
                RECONCILE_SECONDS.labels(queue.name, "error").observe(time.monotonic() - started)
                RECONCILE_ERRORS.labels(queue.name).inc()
                log.warning(
                    "reconcile failed, retrying with backoff",
                    extra={
                        "object": describe(key),
                        "queue": queue.name,
                        "error": repr(exc),
                        "retries": queue.num_requeues(key),
                    },
                    exc_info=log.isEnabledFor(logging.DEBUG),
                )
                queue.add_rate_limited(key)
            else:
                RECONCILE_SECONDS.labels(queue.name, "success").observe(time.monotonic() - started)
                if result.requeue_after is not None:
                    queue.forget(key)
                    queue.add_after(key, result.requeue_after)
                elif result.requeue:
                    queue.add_rate_limited(key)
                else:
                    queue.forget(key)
            queue.done(key)

    async with asyncio.TaskGroup() as tg:
        for _ in range(workers):
            tg.create_task(worker())
