"""The gossip engine: SWIM failure detection with Lifeguard, piggybacked dissemination, push-pull anti-entropy.

It follows hashicorp/memberlist (``state.go``: ``probe``, ``probeNode``, ``gossip``, ``pushPull``; ``net.go``: the
handlers) and is sans-IO: time, timers, datagrams and streams come from a ``Runtime``, so the same engine runs on
real sockets and in the virtual-clock simulation. Every datagram and stream message is sealed by the keyring."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from dpfd.gossip import wire
from dpfd.gossip.broadcast import Broadcast, BroadcastQueue
from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import SEAL_OVERHEAD, SENDER_ID_SIZE, Keyring, Opener, PacketRejected, PacketStats, Sealer
from dpfd.gossip.lifeguard import probe_awareness_delta
from dpfd.gossip.messages import Ack, IndirectPing, Nack, PacketMessage, Ping, PushNodeState, PushPull
from dpfd.gossip.runtime import Runtime, Timer
from dpfd.gossip.state import Alive, Event, Member, Membership, MemberState, Message, Outcome, Suspect

log = logging.getLogger(__name__)

EventHandler = Callable[[Event, Member], None]
NACK_FRACTION = 0.8


@dataclass(slots=True)
class EngineStats:
    probes: int = 0
    probe_failures: int = 0
    indirect_probes: int = 0
    tcp_fallback_ok: int = 0
    suspicions_raised: int = 0
    refutations: int = 0
    push_pulls: int = 0
    push_pull_failures: int = 0
    malformed: int = 0
    bytes_sent: int = 0
    packets_sent: int = 0


@dataclass(slots=True)
class _Probe:
    """One outstanding probe of ours (or an indirect probe we run for someone else)."""

    target: str
    acked: bool = False
    on_ack: Callable[[], None] | None = None
    nacks: int = 0
    timers: list[Timer] = field(default_factory=list)


class GossipNode:
    def __init__(
        self,
        name: str,
        addr: str,
        config: GossipConfig,
        runtime: Runtime,
        keyring: Keyring,
        *,
        meta: bytes = b"",
        on_event: EventHandler | None = None,
    ) -> None:
        if len(meta) > config.max_meta_size:
            raise ValueError(f"metadata is {len(meta)} bytes, more than max_meta_size ({config.max_meta_size})")
        self.name = name
        self.addr = addr
        self.config = config
        self.rt = runtime
        # The sender id from the runtime's rng: a simulated run is then the same bytes every time.
        self.sealer = Sealer(keyring, sender_id=runtime.rng.randbytes(SENDER_ID_SIZE))
        self.opener = Opener(
            keyring,
            max_stream_size=config.max_stream_size,
            max_skew=config.max_clock_skew,
            window=config.replay_window,
        )
        self.membership = Membership(local=name, addr=addr, config=config, meta=meta, now=runtime.now())
        self.queue = BroadcastQueue(config.retransmit_mult)
        self.stats = EngineStats()
        self.on_event = on_event
        self._seq = 0
        self._probes: dict[int, _Probe] = {}
        self._probe_order: list[str] = []
        self._probe_index = 0
        self._suspicion_timers: dict[str, Timer] = {}
        self._ticks: dict[str, Timer] = {}
        self._running = False
        # What each extra message adds to a compound packet (beyond its own bytes) when packing broadcasts.
        self._per_message_overhead = wire.packet_overhead(2) - wire.packet_overhead(1)

    # --- lifecycle ---------------------------------------------------------------------------------------------------

    @property
    def packet_stats(self) -> PacketStats:
        return self.opener.stats

    def start(self) -> None:
        """Start probing, gossiping and anti-entropy. Stagger the first rounds so a fleet started together does not
        fire in lockstep (memberlist does the same with a random initial delay)."""
        if self._running:
            return
        self._running = True
        rng = self.rt.rng
        self._after("probe", rng.uniform(0, self.config.probe_interval), self._probe_tick)
        self._after("gossip", rng.uniform(0, self.config.gossip_interval), self._gossip_tick)
        if self.config.push_pull_interval > 0:
            self._after("push-pull", rng.uniform(0, self._push_pull_interval()), self._push_pull_tick)
        if self.config.queue_check_interval > 0:
            self._after("queue-check", self.config.queue_check_interval, self._queue_check_tick)

    def stop(self) -> None:
        """Stop every timer; the node answers nothing more (its runtime is closed by its owner)."""
        self._running = False
        for t in self._ticks.values():
            t.cancel()
        self._ticks.clear()
        for t in self._suspicion_timers.values():
            t.cancel()
        self._suspicion_timers.clear()
        for p in self._probes.values():
            for t in p.timers:
                t.cancel()
        self._probes.clear()

    def join(self, seeds: Sequence[str], on_done: Callable[[int], None] | None = None) -> None:
        """Exchange full state with every seed over a stream; ``on_done`` gets how many answered."""
        seeds = [s for s in seeds if s != self.addr]
        if not seeds:
            if on_done is not None:
                on_done(0)
            return
        pending = len(seeds)
        ok = 0

        def answered(reply: bytes | None) -> None:
            nonlocal pending, ok
            if self._merge_push_pull_reply(reply):
                ok += 1
            pending -= 1
            if pending == 0 and on_done is not None:
                on_done(ok)

        for seed in seeds:
            self._stream(seed, self._local_push_pull(join=True), answered)

    def leave(self, timeout: float, on_done: Callable[[], None] | None = None) -> None:
        """Tell the cluster we are leaving (a dead message from ourselves) and call ``on_done`` once it has been sent
        its full retransmit count, or after ``timeout``. Probing stops; gossip goes on until the owner stops us."""
        others = self.estimated_size() > 1  # counted before we mark ourselves left
        outcome = self.membership.leave(self.rt.now())
        done = False

        def finish() -> None:
            nonlocal done
            if not done:
                done = True
                if on_done is not None:
                    on_done()

        if outcome.broadcast is not None and others:
            self._broadcast(outcome.broadcast, on_done=finish)
            self._after("leave", timeout, finish)
            self._gossip_tick(reschedule=False)  # start spreading it now, not at the next tick
        else:
            finish()

    def update_meta(self, meta: bytes) -> None:
        """Publish new metadata: a higher incarnation of our alive message."""
        if len(meta) > self.config.max_meta_size:
            raise ValueError(f"metadata is {len(meta)} bytes, more than max_meta_size ({self.config.max_meta_size})")
        me = self.membership.members[self.name]
        self.membership.meta = meta
        alive = Alive(self.name, me.incarnation + 1, self.addr, meta)
        self._apply(self.membership.on_alive(alive, self.rt.now(), bootstrap=True))

    # --- views -------------------------------------------------------------------------------------------------------

    def members(self) -> list[Member]:
        """Every member we know, ourselves included, in any state."""
        return list(self.membership.members.values())

    def alive_members(self) -> list[Member]:
        return [m for m in self.membership.members.values() if m.state is MemberState.ALIVE]

    def estimated_size(self) -> int:
        return self.membership.estimated_size()

    @property
    def health_score(self) -> int:
        """Lifeguard's local health: 0 is healthy; timeouts are scaled by score + 1."""
        return self.membership.awareness.score

    # --- Handler protocol --------------------------------------------------------------------------------------------

    def on_packet(self, data: bytes, from_addr: str) -> None:
        if not self._running:
            return
        try:
            payload = self.opener.open(data, self.rt.wall())
        except PacketRejected as e:
            log.debug("dropped packet from %s: %s", from_addr, e)
            return
        try:
            msgs = wire.decode_packet(payload)
        except wire.WireError as e:
            self.stats.malformed += 1
            log.debug("malformed packet from %s: %s", from_addr, e)
            return
        for msg in msgs:
            self._handle(msg, from_addr)

    def on_stream(self, data: bytes, from_addr: str) -> bytes | None:
        if not self._running:
            return None
        try:
            msg = wire.decode_stream(self.opener.open_stream(data, self.rt.wall()))
        except PacketRejected as e:
            log.debug("dropped stream from %s: %s", from_addr, e)
            return None
        except wire.WireError as e:
            self.stats.malformed += 1
            log.debug("malformed stream from %s: %s", from_addr, e)
            return None
        if isinstance(msg, Ping):
            if msg.node and msg.node != self.name:
                return None
            return self._seal_stream(Ack(msg.seq))
        if isinstance(msg, PushPull):
            self._merge_push_pull(msg)
            return self._seal_stream(self._local_push_pull(join=False))
        return None

    # --- message handlers --------------------------------------------------------------------------------------------

    def _handle(self, msg: PacketMessage, from_addr: str) -> None:
        if isinstance(msg, Ping):
            if msg.node and msg.node != self.name:
                return  # a stale address: the prober thinks someone else lives here
            self._send(msg.source_addr or from_addr, [Ack(msg.seq)])
        elif isinstance(msg, Ack):
            probe = self._probes.get(msg.seq)
            if probe is not None and not probe.acked:
                probe.acked = True
                if probe.on_ack is not None:
                    probe.on_ack()
        elif isinstance(msg, Nack):
            probe = self._probes.get(msg.seq)
            if probe is not None:
                probe.nacks += 1
        elif isinstance(msg, IndirectPing):
            self._indirect_ping(msg, from_addr)
        else:
            self._apply(self.membership.on_message(msg, self.rt.now()))

    def _indirect_ping(self, req: IndirectPing, from_addr: str) -> None:
        """Probe ``req.node`` for a peer; forward its ack, or a nack when it stays silent."""
        reply_to = req.source_addr or from_addr
        seq = self._next_seq()
        probe = _Probe(target=req.node)

        def acked() -> None:
            self._drop_probe(seq)
            self._send(reply_to, [Ack(req.seq)])

        def silent() -> None:
            if self._drop_probe(seq) is not None and req.nack:
                self._send(reply_to, [Nack(req.seq)])

        probe.on_ack = acked
        self._probes[seq] = probe
        # Lifeguard: nack at 80 % of the probe timeout, so the nack is back before the requester's round ends.
        probe.timers.append(self.rt.call_later(NACK_FRACTION * self.config.probe_timeout, silent))
        self._send(req.addr, [Ping(seq, req.node, self.name, self.addr)])

    def _apply(self, outcome: Outcome) -> None:
        """Act on what the state machine decided: gossip the message, track suspicion timers, tell the delegate."""
        if not outcome.applied:
            return
        msg = outcome.broadcast
        if outcome.refuted:
            self.stats.refutations += 1
        if msg is not None:
            self._broadcast(msg)
            self._track_suspicion(msg.node)
        if outcome.event is not None and msg is not None and self.on_event is not None:
            member = self.membership.members.get(msg.node)
            if member is not None:
                self.on_event(outcome.event, member)

    def _track_suspicion(self, node: str) -> None:
        timer = self.membership.suspicions.get(node)
        old = self._suspicion_timers.pop(node, None)
        if old is not None:
            old.cancel()
        if timer is not None:
            delay = max(0.0, timer.deadline - self.rt.now())
            self._suspicion_timers[node] = self.rt.call_later(delay, self._expire_suspicions)

    def _expire_suspicions(self) -> None:
        for outcome in self.membership.expire(self.rt.now()):
            self._apply(outcome)
        for node in list(self._suspicion_timers):
            if node not in self.membership.suspicions:
                self._suspicion_timers.pop(node).cancel()

    # --- probing -----------------------------------------------------------------------------------------------------

    def _probe_tick(self) -> None:
        if not self._running:
            return
        self._after("probe", self.membership.awareness.scale(self.config.probe_interval), self._probe_tick)
        if self.membership.left:
            return
        target = self._next_probe_target()
        if target is not None:
            self._probe(target)

    def _next_probe_target(self) -> Member | None:
        """Round-robin over a shuffled list, reshuffled (and the long dead forgotten) after each pass: every member is
        probed once per pass, which bounds the worst-case first detection (SWIM §4.3)."""
        members = self.membership.members
        for _ in range(2):
            while self._probe_index < len(self._probe_order):
                name = self._probe_order[self._probe_index]
                self._probe_index += 1
                m = members.get(name)
                if m is not None and name != self.name and not m.state.dead_or_left:
                    return m
            self._reset_probe_order()
        return None

    def _reset_probe_order(self) -> None:
        now = self.rt.now()
        forget = [
            m.name
            for m in self.membership.members.values()
            if m.state.dead_or_left and now - m.state_change > self.config.gossip_to_the_dead_time
        ]
        for name in forget:
            self.membership.forget(name)
        self._probe_order = [n for n in self.membership.members if n != self.name]
        self.rt.rng.shuffle(self._probe_order)
        self._probe_index = 0

    def _probe(self, target: Member) -> None:
        self.stats.probes += 1
        seq = self._next_seq()
        probe = _Probe(target=target.name)
        self._probes[seq] = probe
        interval = self.membership.awareness.scale(self.config.probe_interval)
        ping = Ping(seq, target.name, self.name, self.addr)
        first: list[PacketMessage] = [ping]
        if target.state is MemberState.SUSPECT:
            # Buddy system (Lifeguard): tell a suspect it is suspected, so it can refute at once.
            first.append(Suspect(target.name, target.incarnation, self.name))
        self._send(target.addr, first)
        expected_nacks = 0
        fallback_ok = False

        def indirect() -> None:
            nonlocal expected_nacks
            if probe.acked or not self._running:
                return
            helpers = self._random_members(self.config.indirect_checks, exclude={target.name})
            for h in helpers:
                self.stats.indirect_probes += 1
                self._send(h.addr, [IndirectPing(seq, target.name, target.addr, self.name, self.addr, nack=True)])
            expected_nacks = len(helpers)
            if not self.config.disable_tcp_pings:
                remaining = max(0.0, interval - self.config.probe_timeout)

                def tcp_reply(reply: bytes | None) -> None:
                    nonlocal fallback_ok
                    if reply is not None and isinstance(self._open_stream(reply), Ack):
                        fallback_ok = True

                self._stream(target.addr, Ping(seq, target.name, self.name, self.addr), tcp_reply, remaining)

        def conclude() -> None:
            self._drop_probe(seq)
            if not self._running:
                return
            # Missing nacks count against our own health even when TCP gets through (memberlist does the same).
            self.membership.awareness.apply_delta(probe_awareness_delta(probe.acked, expected_nacks, probe.nacks))
            if probe.acked:
                return
            if fallback_ok:
                # UDP failed but TCP reached it: the member is alive; the network may be lossy.
                self.stats.tcp_fallback_ok += 1
                return
            self.stats.probe_failures += 1
            outcome = self.membership.suspect_local(target.name, self.rt.now())
            if outcome.applied:
                self.stats.suspicions_raised += 1
            self._apply(outcome)

        probe.timers.append(self.rt.call_later(self.config.probe_timeout, indirect))
        probe.timers.append(self.rt.call_later(interval, conclude))

    def _drop_probe(self, seq: int) -> _Probe | None:
        probe = self._probes.pop(seq, None)
        if probe is not None:
            for t in probe.timers:
                t.cancel()
        return probe

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        return self._seq

    def _random_members(self, k: int, exclude: set[str], *, include_recently_dead: bool = False) -> list[Member]:
        """Up to k random members other than ourselves and ``exclude``: alive ones, or for gossip also suspects and the
        recently dead (so they learn they were declared dead and can refute)."""
        now = self.rt.now()
        dead_time = self.config.gossip_to_the_dead_time

        def wanted(m: Member) -> bool:
            if m.name == self.name or m.name in exclude:
                return False
            if m.state is MemberState.ALIVE:
                return True
            if not include_recently_dead:
                return False
            if m.state is MemberState.SUSPECT:
                return True
            return m.state is MemberState.DEAD and now - m.state_change <= dead_time

        members = list(self.membership.members.values())
        rng = self.rt.rng
        picked: dict[str, Member] = {}
        # Sample random indexes rather than filter everyone: with 1,000 members a full pass on every tick dominates.
        for _ in range(3 * len(members)):
            if len(picked) >= k or not members:
                break
            m = members[rng.randrange(len(members))]
            if m.name not in picked and wanted(m):
                picked[m.name] = m
        return list(picked.values())

    # --- dissemination -----------------------------------------------------------------------------------------------

    def _broadcast(self, msg: Message, on_done: Callable[[], None] | None = None) -> None:
        encoded = wire.encode_message(msg)  # kept encoded: it is sent many times
        self.queue.queue(Broadcast(key=msg.node, message=encoded, size=len(encoded), on_done=on_done))

    def _gossip_tick(self, reschedule: bool = True) -> None:
        if not self._running:
            return
        if reschedule:
            self._after("gossip", self.config.gossip_interval, self._gossip_tick)
        if not len(self.queue):
            return
        for m in self._random_members(self.config.gossip_nodes, exclude=set(), include_recently_dead=True):
            msgs = self._piggyback([])
            if not msgs:
                return
            self._send_raw(m.addr, msgs)

    def _piggyback(self, msgs: list[PacketMessage]) -> list[bytes]:
        """``msgs`` encoded, plus as many pending broadcasts as fit in one datagram of ``udp_buffer_size``."""
        encoded = [wire.encode_message(m) for m in msgs]
        budget = self.config.udp_buffer_size - SEAL_OVERHEAD - wire.packet_overhead(len(encoded) + 1)
        budget -= sum(len(e) for e in encoded)
        extra = self.queue.get(self._per_message_overhead, budget, self.estimated_size())
        return encoded + cast(list[bytes], extra)

    def _send(self, addr: str, msgs: list[PacketMessage]) -> None:
        self._send_raw(addr, self._piggyback(msgs))

    def _send_raw(self, addr: str, encoded: list[bytes]) -> None:
        data = self.sealer.seal(wire.compound(encoded), self.rt.wall())
        self.stats.packets_sent += 1
        self.stats.bytes_sent += len(data)
        self.rt.send_packet(addr, data)

    def _queue_check_tick(self) -> None:
        """A flood of updates (a mass restart) must not grow the queue without bound: keep the newest."""
        if not self._running:
            return
        self._after("queue-check", self.config.queue_check_interval, self._queue_check_tick)
        self.queue.prune(max(self.config.max_queue_depth, 2 * self.estimated_size()))

    # --- anti-entropy ------------------------------------------------------------------------------------------------

    def _push_pull_interval(self) -> float:
        """memberlist's ``pushPullScale``: beyond 32 members, slow down by log2 steps so total load stays flat."""
        n = self.estimated_size()
        base = self.config.push_pull_interval
        if n <= 32:
            return base
        return base * (math.ceil(math.log2(n) - math.log2(32)) + 1)

    def _push_pull_tick(self) -> None:
        if not self._running:
            return
        self._after("push-pull", self._push_pull_interval(), self._push_pull_tick)
        if self.membership.left:
            return
        peers = self._random_members(1, exclude=set())
        if not peers:
            return
        self.stats.push_pulls += 1

        def answered(reply: bytes | None) -> None:
            if not self._merge_push_pull_reply(reply):
                self.stats.push_pull_failures += 1

        self._stream(peers[0].addr, self._local_push_pull(join=False), answered)

    def _local_push_pull(self, join: bool) -> PushPull:
        states = tuple(
            PushNodeState(m.name, m.addr, m.meta, m.incarnation, m.state) for m in self.membership.members.values()
        )
        return PushPull(join=join, states=states)

    def _merge_push_pull_reply(self, reply: bytes | None) -> bool:
        msg = self._open_stream(reply) if reply is not None else None
        if not isinstance(msg, PushPull):
            return False
        self._merge_push_pull(msg)
        return True

    def _merge_push_pull(self, msg: PushPull) -> None:
        now = self.rt.now()
        for s in msg.states:
            self._apply(self.membership.merge_remote(s.name, s.incarnation, s.addr, s.meta, s.state, now))

    # --- streams and timers ------------------------------------------------------------------------------------------

    def _stream(
        self,
        addr: str,
        msg: Ping | PushPull,
        on_reply: Callable[[bytes | None], None],
        timeout: float | None = None,
    ) -> None:
        data = self._seal_stream(msg)
        self.stats.bytes_sent += len(data)
        self.rt.stream_request(addr, data, self.config.tcp_timeout if timeout is None else timeout, on_reply)

    def _seal_stream(self, msg: Ack | Ping | PushPull) -> bytes:
        return self.sealer.seal(wire.encode_stream(msg), self.rt.wall())

    def _open_stream(self, data: bytes) -> object | None:
        try:
            return wire.decode_stream(self.opener.open_stream(data, self.rt.wall()))
        except (PacketRejected, wire.WireError) as e:
            log.debug("rejected stream reply: %s", e)
            return None

    def _after(self, name: str, delay: float, fn: Callable[[], None]) -> None:
        """(Re)arm the named timer: each periodic job has one pending timer at most."""
        old = self._ticks.pop(name, None)
        if old is not None:
            old.cancel()
        self._ticks[name] = self.rt.call_later(delay, fn)
