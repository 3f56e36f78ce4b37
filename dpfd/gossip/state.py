"""The member state machine (alive / suspect / dead / left) with incarnation numbers and refutation, following the
rules of hashicorp/memberlist's ``state.go`` (``aliveNode``, ``suspectNode``, ``deadNode``, ``refute``).

Pure: no I/O, the clock is passed in. Each handler returns an ``Outcome`` naming what to gossip and what changed;
the transport layer does the sending."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from dpfd.gossip.config import GossipConfig
from dpfd.gossip.lifeguard import Awareness, Suspicion, suspicion_bounds


class MemberState(enum.Enum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"
    LEFT = "left"

    @property
    def dead_or_left(self) -> bool:
        return self in (MemberState.DEAD, MemberState.LEFT)


@dataclass(frozen=True, slots=True)
class Alive:
    node: str
    incarnation: int
    addr: str = ""
    meta: bytes = b""


@dataclass(frozen=True, slots=True)
class Suspect:
    node: str
    incarnation: int
    from_: str


@dataclass(frozen=True, slots=True)
class Dead:
    """A dead message; ``from_ == node`` means the member left gracefully."""

    node: str
    incarnation: int
    from_: str


Message = Alive | Suspect | Dead


class Event(enum.Enum):
    JOIN = "join"
    LEAVE = "leave"  # dead or left
    UPDATE = "update"  # metadata changed


@dataclass(slots=True)
class Member:
    name: str
    addr: str
    meta: bytes
    incarnation: int
    state: MemberState
    state_change: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a handler did: ``broadcast`` is the message to piggyback (the input, a confirmation, or our refutation);
    ``event`` what to tell the delegate; ``refuted`` True when we raised our own incarnation."""

    applied: bool
    broadcast: Message | None = None
    event: Event | None = None
    refuted: bool = False


IGNORED = Outcome(applied=False)


@dataclass(slots=True)
class Membership:
    """The local view of the cluster, including ourselves (``local``)."""

    local: str
    addr: str
    config: GossipConfig
    meta: bytes = b""
    now: float = 0.0
    members: dict[str, Member] = field(default_factory=dict)
    suspicions: dict[str, Suspicion] = field(default_factory=dict)
    awareness: Awareness = field(init=False)
    left: bool = False
    _size: int | None = field(default=None, init=False, repr=False)  # members not gone, cached between changes

    def __post_init__(self) -> None:
        self.awareness = Awareness(self.config.awareness_max_multiplier)
        # memberlist's setAlive: our first incarnation is 1
        self.members[self.local] = Member(self.local, self.addr, self.meta, 1, MemberState.ALIVE, self.now)

    @property
    def incarnation(self) -> int:
        return self.members[self.local].incarnation

    def alive_message(self) -> Alive:
        me = self.members[self.local]
        return Alive(me.name, me.incarnation, me.addr, me.meta)

    def estimated_size(self) -> int:
        """Members not dead or left (memberlist's ``estNumNodes`` counts all known; we exclude the gone)."""
        if self._size is None:
            self._size = sum(1 for m in self.members.values() if not m.state.dead_or_left)
        return self._size

    def forget(self, node: str) -> None:
        """Drop a member we no longer gossip about (dead or left for long enough)."""
        if node != self.local and self.members.pop(node, None) is not None:
            self._size = None

    # --- handlers -------------------------------------------------------------------------------------------------

    def on_alive(self, a: Alive, now: float, *, bootstrap: bool = False) -> Outcome:
        if self.left and a.node == self.local:
            return IGNORED
        state = self.members.get(a.node)
        reclaim = False
        if state is None:
            state = Member(a.node, a.addr, a.meta, 0, MemberState.DEAD, now)
            self.members[a.node] = state
            self._size = None
        elif state.addr != a.addr:
            # another address claims a known name: only a member gone long enough may be reclaimed
            reclaim_time = self.config.dead_node_reclaim_time
            can_reclaim = reclaim_time > 0 and now - state.state_change > reclaim_time
            if state.state.dead_or_left and can_reclaim:
                reclaim = True
            else:
                return IGNORED
        is_local = a.node == self.local
        if a.incarnation <= state.incarnation and not is_local and not reclaim:
            return IGNORED
        if a.incarnation < state.incarnation and is_local:
            return IGNORED
        self.suspicions.pop(a.node, None)
        if is_local and not bootstrap:
            if a.incarnation == state.incarnation and a.meta == state.meta:
                return IGNORED  # our own alive coming back around
            return self._refute(state, a.incarnation)
        old_state, old_meta = state.state, state.meta
        state.incarnation = a.incarnation
        state.addr = a.addr
        state.meta = a.meta
        if state.state is not MemberState.ALIVE:
            state.state = MemberState.ALIVE
            self._size = None
            state.state_change = now
        event: Event | None = None
        if old_state.dead_or_left:
            event = Event.JOIN
        elif old_meta != a.meta:
            event = Event.UPDATE
        return Outcome(applied=True, broadcast=a, event=event)

    def on_suspect(self, s: Suspect, now: float) -> Outcome:
        state = self.members.get(s.node)
        if state is None or s.incarnation < state.incarnation:
            return IGNORED
        timer = self.suspicions.get(s.node)
        if timer is not None:
            # an independent confirmation shortens the timeout; re-gossip it only when new
            if timer.confirm(s.from_, now):
                return Outcome(applied=True, broadcast=s)
            return IGNORED
        if state.state is not MemberState.ALIVE:
            return IGNORED
        if state.name == self.local:
            return self._refute(state, s.incarnation)
        state.incarnation = s.incarnation
        state.state = MemberState.SUSPECT
        state.state_change = now
        k, min_s, max_s = suspicion_bounds(
            self.config.suspicion_mult,
            self.config.suspicion_max_timeout_mult,
            len(self.members),
            self.config.probe_interval,
        )
        self.suspicions[s.node] = Suspicion(start=now, k=k, min_s=min_s, max_s=max_s, accuser=s.from_)
        return Outcome(applied=True, broadcast=s)

    def on_dead(self, d: Dead, now: float) -> Outcome:
        state = self.members.get(d.node)
        if state is None or d.incarnation < state.incarnation:
            return IGNORED
        self.suspicions.pop(d.node, None)
        if state.state.dead_or_left:
            return IGNORED
        if state.name == self.local and not self.left:
            return self._refute(state, d.incarnation)
        state.incarnation = d.incarnation
        state.state = MemberState.LEFT if d.node == d.from_ else MemberState.DEAD
        self._size = None
        state.state_change = now
        return Outcome(applied=True, broadcast=d, event=Event.LEAVE)

    def on_message(self, msg: Message, now: float) -> Outcome:
        if isinstance(msg, Alive):
            return self.on_alive(msg, now)
        if isinstance(msg, Suspect):
            return self.on_suspect(msg, now)
        return self.on_dead(msg, now)

    def merge_remote(
        self, name: str, incarnation: int, addr: str, meta: bytes, remote: MemberState, now: float
    ) -> Outcome:
        """One entry of a push-pull exchange (memberlist ``mergeState``): a remote dead becomes a local suspicion."""
        if remote is MemberState.ALIVE:
            return self.on_alive(Alive(name, incarnation, addr, meta), now)
        if remote is MemberState.LEFT:
            return self.on_dead(Dead(name, incarnation, name), now)
        return self.on_suspect(Suspect(name, incarnation, self.local), now)

    def suspect_local(self, node: str, now: float) -> Outcome:
        """A failed probe: we accuse ``node`` at its current incarnation."""
        state = self.members.get(node)
        if state is None:
            return IGNORED
        return self.on_suspect(Suspect(node, state.incarnation, self.local), now)

    def expire(self, now: float) -> list[Outcome]:
        """Turn every suspicion whose timer ran out into a dead declared by us."""
        outcomes = []
        for node, timer in list(self.suspicions.items()):
            if not timer.expired(now):
                continue
            state = self.members[node]
            if state.state is MemberState.SUSPECT:
                outcomes.append(self.on_dead(Dead(node, state.incarnation, self.local), now))
            else:
                self.suspicions.pop(node, None)
        return outcomes

    def leave(self, now: float) -> Outcome:
        """Graceful leave: mark ourselves left and return the dead message (from ourselves) to gossip."""
        self.left = True
        me = self.members[self.local]
        return self.on_dead(Dead(self.local, me.incarnation, self.local), now)

    def _refute(self, me: Member, accused: int) -> Outcome:
        """Beat the accusation: incarnation becomes max(ours, accused) + 1, and our health score worsens."""
        me.incarnation = max(me.incarnation, accused) + 1
        self.awareness.apply_delta(1)
        return Outcome(applied=True, broadcast=self.alive_message(), refuted=True)
