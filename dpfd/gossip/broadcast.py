"""The dissemination queue (memberlist's ``TransmitLimitedQueue``): membership updates waiting to be piggybacked.

Each update is sent at most ``retransmit_limit(mult, n)`` times. The least-sent go first, and among equals the newest;
a newer update about the same member replaces the older one, so the queue holds at most one update per member."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from dpfd.gossip.lifeguard import retransmit_limit

# How many too-big broadcasts one packing may pass over looking for a smaller one that fits.
MAX_SKIPPED = 8


@dataclass(slots=True)
class Broadcast:
    key: str  # the member it is about: a newer broadcast with the same key invalidates this one
    message: object
    size: int
    on_done: Callable[[], None] | None = None  # told when the broadcast leaves the queue, sent out or replaced
    transmits: int = 0
    order: int = 0
    live: bool = True


@dataclass(slots=True)
class BroadcastQueue:
    retransmit_mult: int
    _by_key: dict[str, Broadcast] = field(default_factory=dict)
    # (transmits, -order, broadcast): least transmitted, then newest, first; stale entries are skipped lazily
    _heap: list[tuple[int, int, Broadcast]] = field(default_factory=list)
    _orders: itertools.count[int] = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self._by_key)

    def queue(self, b: Broadcast) -> None:
        old = self._by_key.pop(b.key, None)
        if old is not None:
            self._finish(old)
        b.order = next(self._orders)
        self._by_key[b.key] = b
        heapq.heappush(self._heap, (b.transmits, -b.order, b))

    def get(self, overhead: int, limit: int, n_members: int) -> list[object]:
        """Messages fitting in ``limit`` bytes, each costing its size plus ``overhead``; counts one transmit each."""
        if not self._by_key:
            return []
        max_transmits = retransmit_limit(self.retransmit_mult, n_members)
        taken: list[Broadcast] = []
        skipped: list[tuple[int, int, Broadcast]] = []
        used = 0
        while self._heap and used + overhead < limit:
            entry = heapq.heappop(self._heap)
            b = entry[2]
            if not b.live or entry[0] != b.transmits:
                continue
            if used + overhead + b.size > limit:
                # Too big for what is left: a smaller one may still fit, but do not walk a long queue to find it.
                skipped.append(entry)
                if len(skipped) >= MAX_SKIPPED:
                    break
                continue
            used += overhead + b.size
            taken.append(b)
        for entry in skipped:
            heapq.heappush(self._heap, entry)
        out = []
        for b in taken:
            out.append(b.message)
            b.transmits += 1
            if b.transmits >= max_transmits:
                del self._by_key[b.key]
                self._finish(b)
            else:
                heapq.heappush(self._heap, (b.transmits, -b.order, b))
        return out

    def prune(self, max_retain: int) -> None:
        """Keep only the ``max_retain`` newest broadcasts (memberlist's ``Prune``, for a queue that outgrew its depth)."""
        if len(self._by_key) <= max_retain:
            return
        for b in sorted(self._by_key.values(), key=lambda b: b.order)[: len(self._by_key) - max_retain]:
            del self._by_key[b.key]
            self._finish(b)
        self._heap = [e for e in self._heap if e[2].live and e[0] == e[2].transmits]
        heapq.heapify(self._heap)

    def _finish(self, b: Broadcast) -> None:
        b.live = False
        if b.on_done is not None:
            b.on_done()
