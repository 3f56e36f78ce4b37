"""What the gossip engine needs from the world: a clock, timers, datagrams and request/reply streams.

The engine (``node``) is written against this protocol only, so the same code runs on real UDP/TCP under asyncio
(``transport``) and inside the deterministic simulation with a virtual clock (``dpfd.sim.gossipnet``)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


# A stream reply (None when the peer could not be reached, refused, or did not answer in time).
StreamCallback = Callable[[bytes | None], None]


class Runtime(Protocol):
    """Everything is callback-based and single-threaded: callbacks never run re-entrantly inside a call."""

    rng: random.Random

    def now(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def wall(self) -> float:
        """Seconds since the epoch (packet timestamps for replay protection)."""
        ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> Timer: ...

    def send_packet(self, addr: str, data: bytes) -> None:
        """Best effort, like UDP: the datagram may be lost, delayed or reordered."""
        ...

    def stream_request(self, addr: str, data: bytes, timeout: float, on_reply: StreamCallback) -> None:
        """Reliable request/reply, like a TCP connection carrying one request and one reply."""
        ...


class Handler(Protocol):
    """What a runtime delivers to the engine."""

    def on_packet(self, data: bytes, from_addr: str) -> None: ...

    def on_stream(self, data: bytes, from_addr: str) -> bytes | None:
        """Answer a stream request; None closes the stream without a reply."""
        ...
