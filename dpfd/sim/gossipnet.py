"""A deterministic simulated network for the gossip engine: one virtual clock, lossy and delayed links, partitions.

Every timer, datagram delivery and stream leg is an event in one heap ordered by (virtual time, sequence number),
so the same seed and the same calls give the same run, event for event. `SimNetwork.attach` hands out `SimRuntime`s
that implement `dpfd.gossip.runtime.Runtime`; a thousand of them fit in one process, and nothing ever sleeps.

The network model:

* Datagrams are lost with probability `loss` (global, or per directed link), dropped between partition groups and
  to or from a crashed member, and otherwise delivered after a delay drawn uniformly from `delay` (global, or per
  directed link). Partitions and crashes are checked again on delivery, so packets in flight are lost too. With
  `bandwidth` (bytes/s) each member's uplink serialises its datagrams: a burst queues behind itself.
* Streams model a TCP connection carrying one request and one reply: no random loss (TCP retransmits), but
  partitions and crashes apply. Three one-way delays in all: the handshake counts as one, the request as one
  (`on_stream` runs after two) and the reply as one (`on_reply` runs after three). A peer that is down, unknown or
  partitioned away never answers: `on_reply(None)` runs at call time + timeout, like a connect to a dead host. A
  handler that returns None closes the stream: `on_reply(None)` runs when that close arrives.
* Handlers, stream replies and timers always run from the clock, never inside the call that caused them. A crashed
  member's timers and pending stream callbacks never run; packets it had already sent still arrive.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from dpfd.gossip.runtime import Handler, Runtime, StreamCallback

# A fixed origin for virtual wall time, so packet timestamps are the same in every run.
DEFAULT_EPOCH = 1_700_000_000.0
# The largest UDP payload over IPv4: a bigger datagram is a bug in the sender, as it would be on a real socket.
MAX_DATAGRAM = 65_507
# A LAN: 1-2 ms one way.
DEFAULT_DELAY = (0.001, 0.002)

DROP_REASONS = ("loss", "partition", "down", "unknown", "unbound")

# An event runs as fn(a, b, c): the arguments ride in the heap tuple so a delivery costs no closure.
EventFn = Callable[[Any, Any, Any], None]


class ClockTimer:
    """A handle on a scheduled callback; `cancel` marks it and the clock skips it when it comes up."""

    __slots__ = ("cancelled", "fn")

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _fire_clock_timer(timer: ClockTimer, _b: object, _c: object) -> None:
    if not timer.cancelled:
        timer.fn()


class VirtualClock:
    """A discrete-event scheduler: virtual time jumps from one event to the next."""

    __slots__ = ("_heap", "_running", "_seq", "epoch", "events_run", "now")

    def __init__(self, start: float = 0.0, epoch: float = DEFAULT_EPOCH) -> None:
        # Read `now` freely; only the clock moves it.
        self.now = start
        self.epoch = epoch
        self.events_run = 0
        self._heap: list[tuple[float, int, EventFn, Any, Any, Any]] = []
        # Equal times run in scheduling order, and the heap never has to compare callbacks.
        self._seq = itertools.count()
        self._running = False

    def wall(self) -> float:
        return self.epoch + self.now

    @property
    def pending(self) -> int:
        """Events in the heap, cancelled timers included until their time comes."""
        return len(self._heap)

    def schedule(self, when: float, fn: EventFn, a: Any = None, b: Any = None, c: Any = None) -> None:
        """Run fn(a, b, c) at `when` (never earlier than now). No handle: the simulation's own events use this."""
        heapq.heappush(self._heap, (when if when > self.now else self.now, next(self._seq), fn, a, b, c))

    def call_at(self, when: float, fn: Callable[[], None]) -> ClockTimer:
        timer = ClockTimer(fn)
        self.schedule(when, _fire_clock_timer, timer)
        return timer

    def call_later(self, delay: float, fn: Callable[[], None]) -> ClockTimer:
        return self.call_at(self.now + delay, fn)

    def run_until(self, t: float) -> None:
        """Run every event due at or before `t`, then leave the clock at `t`."""
        if self._running:
            raise RuntimeError("run_until called from inside an event")
        self._running = True
        heap = self._heap
        pop = heapq.heappop
        ran = 0
        try:
            while heap and heap[0][0] <= t:
                when, _, fn, a, b, c = pop(heap)
                self.now = when
                ran += 1
                fn(a, b, c)
        finally:
            self._running = False
            self.events_run += ran
        if t > self.now:
            self.now = t

    def run_for(self, dt: float) -> None:
        self.run_until(self.now + dt)

    def run_until_true(self, pred: Callable[[], bool], deadline: float, check_every: float = 0.1) -> float | None:
        """Run until `pred()` holds, checking it now and every `check_every` s; the virtual time it first held at
        a check, or None if it still fails at the absolute virtual time `deadline`."""
        if check_every <= 0:
            raise ValueError(f"check_every must be > 0, got {check_every}")
        while True:
            if pred():
                return self.now
            if self.now >= deadline:
                return None
            self.run_until(min(self.now + check_every, deadline))


class MemberTimer:
    """A member's timer: it dies with the member, without the member having to track its timers."""

    __slots__ = ("cancelled", "fn", "owner")

    def __init__(self, fn: Callable[[], None], owner: SimRuntime) -> None:
        self.fn = fn
        self.owner = owner
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


def _fire_runtime_timer(timer: MemberTimer, _b: object, _c: object) -> None:
    if not timer.cancelled and not timer.owner.down:
        timer.fn()


class _Stream:
    """One request/reply exchange in flight."""

    __slots__ = ("client", "done", "on_reply", "request", "server")

    def __init__(self, client: SimRuntime, server: SimRuntime | None, request: bytes, on_reply: StreamCallback) -> None:
        self.client = client
        self.server = server
        self.request = request
        self.on_reply = on_reply
        self.done = False


class SimRuntime:
    """One member's view of the simulated world (implements `dpfd.gossip.runtime.Runtime`)."""

    __slots__ = (
        "_clock",
        "_link_delay",
        "_link_loss",
        "_net",
        "_tx_free_at",
        "addr",
        "bytes_received",
        "bytes_sent",
        "down",
        "group",
        "handler",
        "packets_received",
        "packets_sent",
        "rng",
        "stream_bytes_received",
        "stream_bytes_sent",
    )

    def __init__(self, net: SimNetwork, addr: str, rng: random.Random, handler: Handler | None) -> None:
        self._net = net
        self._clock = net.clock
        self.addr = addr
        self.rng = rng
        self.handler = handler
        self.down = False
        # Partition group: members talk only within their group (0 = everyone not named in a partition).
        self.group = 0
        # Per-destination overrides, shared with the network so they can be set before the member exists.
        self._link_loss: dict[str, float] = net._link_loss.setdefault(addr, {})
        self._link_delay: dict[str, tuple[float, float]] = net._link_delay.setdefault(addr, {})
        self._tx_free_at = 0.0
        self.reset_counters()

    def reset_counters(self) -> None:
        self.bytes_sent = 0
        self.packets_sent = 0
        self.bytes_received = 0
        self.packets_received = 0
        self.stream_bytes_sent = 0
        self.stream_bytes_received = 0

    @property
    def stream_bytes(self) -> int:
        """Stream bytes this member sent and received."""
        return self.stream_bytes_sent + self.stream_bytes_received

    def bind(self, handler: Handler) -> None:
        self.handler = handler

    def now(self) -> float:
        return self._clock.now

    def wall(self) -> float:
        return self._clock.epoch + self._clock.now

    def call_later(self, delay: float, fn: Callable[[], None]) -> MemberTimer:
        timer = MemberTimer(fn, self)
        self._clock.schedule(self._clock.now + delay, _fire_runtime_timer, timer)
        return timer

    def send_packet(self, addr: str, data: bytes) -> None:
        net = self._net
        size = len(data)
        if size > MAX_DATAGRAM:
            raise ValueError(f"{self.addr} -> {addr}: datagram of {size} bytes exceeds {MAX_DATAGRAM}")
        if self.down:
            net.dropped["down"] += 1
            return
        self.packets_sent += 1
        self.bytes_sent += size
        net.packets_sent += 1
        net.bytes_sent += size
        dst = net._runtimes.get(addr)
        if dst is None:
            net.dropped["unknown"] += 1
            return
        if dst.down:
            net.dropped["down"] += 1
            return
        if dst.group != self.group:
            net.dropped["partition"] += 1
            return
        rng = net._rng
        loss = self._link_loss.get(addr, net.loss) if self._link_loss else net.loss
        if loss and rng.random() < loss:
            net.dropped["loss"] += 1
            return
        lo, hi = self._link_delay.get(addr, net.delay) if self._link_delay else net.delay
        clock = self._clock
        if net.bandwidth is None:
            when = clock.now + lo + (hi - lo) * rng.random()
        else:
            start = self._tx_free_at if self._tx_free_at > clock.now else clock.now
            self._tx_free_at = start + size / net.bandwidth
            when = self._tx_free_at + lo + (hi - lo) * rng.random()
        heapq.heappush(clock._heap, (when, next(clock._seq), net._deliver, dst, data, self))

    def stream_request(self, addr: str, data: bytes, timeout: float, on_reply: StreamCallback) -> None:
        if self.down:
            return
        net = self._net
        clock = self._clock
        server = net._runtimes.get(addr)
        stream = _Stream(self, server, data, on_reply)
        net.streams += 1
        clock.schedule(clock.now + timeout, net._stream_timeout, stream)
        if server is None or server.down or server.group != self.group:
            return
        self.stream_bytes_sent += len(data)
        net.stream_bytes += len(data)
        # Handshake and request: two one-way legs on this link.
        arrival = clock.now + net._one_way(self, addr) + net._one_way(self, addr)
        clock.schedule(arrival, net._stream_arrive, stream, clock.now + timeout)


class SimNetwork:
    """Simulated UDP and TCP between `SimRuntime`s on one `VirtualClock`."""

    def __init__(
        self,
        clock: VirtualClock,
        seed: int,
        *,
        loss: float = 0.0,
        delay: tuple[float, float] = DEFAULT_DELAY,
        bandwidth: float | None = None,
    ) -> None:
        self.clock = clock
        self.seed = seed
        self._rng = random.Random(seed)
        self.loss = _check_probability(loss)
        self.delay = _check_delay(delay)
        if bandwidth is not None and bandwidth <= 0:
            raise ValueError(f"bandwidth must be > 0 bytes/s, got {bandwidth}")
        self.bandwidth = bandwidth
        self._runtimes: dict[str, SimRuntime] = {}
        self._group_of: dict[str, int] = {}
        self._link_loss: dict[str, dict[str, float]] = {}
        self._link_delay: dict[str, dict[str, tuple[float, float]]] = {}
        self.reset_counters()

    # -- members ---------------------------------------------------------------------------------------------

    def attach(self, addr: str, handler: Handler | None = None) -> SimRuntime:
        """A runtime bound at `addr`. Attaching a crashed member's address again starts a fresh member there."""
        old = self._runtimes.get(addr)
        if old is not None and not old.down:
            raise ValueError(f"{addr} is already attached")
        # Seeded from a string, so the member's stream does not depend on hash randomisation or attach order.
        runtime = SimRuntime(self, addr, random.Random(f"{self.seed}/{addr}"), handler)
        runtime.group = self._group_of.get(addr, 0)
        self._runtimes[addr] = runtime
        return runtime

    def runtime(self, addr: str) -> SimRuntime:
        return self._runtimes[addr]

    @property
    def addresses(self) -> list[str]:
        return list(self._runtimes)

    def crash(self, addr: str) -> None:
        """The member stops at once: it neither sends nor receives, and its timers and stream callbacks never run."""
        self._runtimes[addr].down = True

    def is_down(self, addr: str) -> bool:
        return self._runtimes[addr].down

    # -- failure injection -----------------------------------------------------------------------------------

    def partition(self, groups: Iterable[Iterable[str]]) -> None:
        """Only members of the same group can talk; members named in no group form one more group together."""
        group_of: dict[str, int] = {}
        for number, group in enumerate(groups, start=1):
            for addr in group:
                if addr in group_of:
                    raise ValueError(f"{addr} is in more than one partition group")
                group_of[addr] = number
        self._group_of = group_of
        for addr, runtime in self._runtimes.items():
            runtime.group = group_of.get(addr, 0)

    def heal(self) -> None:
        self.partition([])

    def reachable(self, a: str, b: str) -> bool:
        """Whether a datagram from a to b could arrive now (ignoring random loss)."""
        src, dst = self._runtimes.get(a), self._runtimes.get(b)
        return src is not None and dst is not None and not src.down and not dst.down and src.group == dst.group

    def set_loss(self, p: float) -> None:
        self.loss = _check_probability(p)

    def set_delay(self, delay: tuple[float, float]) -> None:
        self.delay = _check_delay(delay)

    def set_link_loss(self, a: str, b: str, p: float | None) -> None:
        """Loss on the directed link a -> b only (None: back to the global loss)."""
        links = self._link_loss.setdefault(a, {})
        if p is None:
            links.pop(b, None)
        else:
            links[b] = _check_probability(p)

    def set_link_delay(self, a: str, b: str, delay: tuple[float, float] | None) -> None:
        """One-way delay range on the directed link a -> b only (None: back to the global delay)."""
        links = self._link_delay.setdefault(a, {})
        if delay is None:
            links.pop(b, None)
        else:
            links[b] = _check_delay(delay)

    # -- accounting ------------------------------------------------------------------------------------------

    def reset_counters(self) -> None:
        """Zero the network's totals and every member's counters (e.g. after a warm-up)."""
        self.bytes_sent = 0
        self.packets_sent = 0
        self.packets_delivered = 0
        self.stream_bytes = 0
        self.streams = 0
        self.stream_failures = 0
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)
        for runtime in self._runtimes.values():
            runtime.reset_counters()

    # -- events ----------------------------------------------------------------------------------------------

    def _deliver(self, dst: SimRuntime, data: bytes, src: SimRuntime) -> None:
        if dst.down:
            self.dropped["down"] += 1
        elif dst.group != src.group:
            self.dropped["partition"] += 1
        elif dst.handler is None:
            self.dropped["unbound"] += 1
        else:
            dst.packets_received += 1
            dst.bytes_received += len(data)
            self.packets_delivered += 1
            dst.handler.on_packet(data, src.addr)

    def _one_way(self, src: SimRuntime, dst_addr: str) -> float:
        lo, hi = src._link_delay.get(dst_addr, self.delay)
        return lo + (hi - lo) * self._rng.random()

    def _stream_arrive(self, stream: _Stream, deadline: float, _c: object) -> None:
        client, server = stream.client, stream.server
        assert server is not None
        if server.down or server.group != client.group or server.handler is None:
            return  # nobody answers: the client's timeout fires
        server.stream_bytes_received += len(stream.request)
        reply = server.handler.on_stream(stream.request, client.addr)
        if reply is not None:
            server.stream_bytes_sent += len(reply)
            self.stream_bytes += len(reply)
        arrival = self.clock.now + self._one_way(server, client.addr)
        if arrival < deadline:
            self.clock.schedule(arrival, self._stream_reply, stream, reply)

    def _stream_reply(self, stream: _Stream, reply: bytes | None, _c: object) -> None:
        client, server = stream.client, stream.server
        assert server is not None
        if stream.done or client.group != server.group:
            return
        stream.done = True
        if client.down:
            return
        if reply is not None:
            client.stream_bytes_received += len(reply)
        stream.on_reply(reply)

    def _stream_timeout(self, stream: _Stream, _b: object, _c: object) -> None:
        if stream.done:
            return
        stream.done = True
        if not stream.client.down:
            self.stream_failures += 1
            stream.on_reply(None)


def _check_probability(p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"a loss probability must be within [0, 1], got {p}")
    return float(p)


def _check_delay(delay: tuple[float, float]) -> tuple[float, float]:
    lo, hi = delay
    if not 0.0 <= lo <= hi:
        raise ValueError(f"a delay range needs 0 <= min <= max, got {delay}")
    return (float(lo), float(hi))


if TYPE_CHECKING:

    def _is_a_runtime(runtime: SimRuntime) -> Runtime:
        return runtime  # mypy proves SimRuntime satisfies the engine's protocol
