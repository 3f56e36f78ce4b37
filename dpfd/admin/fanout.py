"""One publisher, many slow readers: the admin API's event and log streams.

Each subscriber has a bounded queue. A subscriber that falls behind loses its oldest items, never blocks the
publisher, and is told how many it lost (`Missed`) before the items that follow the gap. The fanout also keeps the
most recent items, for replay to new subscribers.

Publishing is thread-safe (log records come from worker threads too); reading is asyncio, on the loop the
subscriber was made on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Missed:
    """This many items were dropped here because the subscriber read too slowly."""

    count: int


@dataclass(frozen=True, slots=True)
class Synced:
    """The replayed items end here: what follows happened after the subscription began."""


class Subscriber(Generic[T]):
    def __init__(self, lock: threading.Lock, limit: int) -> None:
        self._lock = lock
        self._limit = limit
        self._items: deque[T | Synced] = deque()
        self._missed = 0
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def _offer(self, item: T | Synced) -> None:
        """Called with the fanout's lock held."""
        if len(self._items) >= self._limit:
            self._items.popleft()
            self._missed += 1
        self._items.append(item)

    def _notify(self) -> None:
        if threading.get_ident() == self._thread:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody reads any more
                self._loop.call_soon_threadsafe(self._wake.set)

    async def next(self) -> T | Missed | Synced:
        """The next item, or a Missed marker when items were dropped before it, or the Synced marker."""
        while True:
            with self._lock:
                if self._missed:
                    missed, self._missed = self._missed, 0
                    return Missed(missed)
                if self._items:
                    return self._items.popleft()
                self._wake.clear()
            await self._wake.wait()


class Fanout(Generic[T]):
    def __init__(self, history: int = 512, per_subscriber: int = 256) -> None:
        """``history``: items kept for replay; ``per_subscriber``: queue length of each subscriber."""
        self._lock = threading.Lock()
        self._history: deque[T] = deque(maxlen=history)
        self._per_subscriber = per_subscriber
        self._subscribers: set[Subscriber[T]] = set()

    def publish(self, item: T) -> None:
        with self._lock:
            self._history.append(item)
            subscribers = list(self._subscribers)
            for s in subscribers:
                s._offer(item)
        for s in subscribers:
            s._notify()

    def recent(self) -> list[T]:
        with self._lock:
            return list(self._history)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    @contextlib.contextmanager
    def subscribe(self, replay: int = 0, synced: bool = False) -> Iterator[Subscriber[T]]:
        """A subscriber for the duration of the block, first given the last ``replay`` items kept (no gap, no
        repeat between those and the live ones), then (``synced``) a Synced marker."""
        sub: Subscriber[T] = Subscriber(self._lock, max(self._per_subscriber, replay + 1))
        with self._lock:
            if replay > 0:
                for item in list(self._history)[-replay:]:
                    sub._offer(item)
            if synced:
                sub._offer(Synced())
            self._subscribers.add(sub)
        try:
            yield sub
        finally:
            with self._lock:
                self._subscribers.discard(sub)
