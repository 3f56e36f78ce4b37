"""A whole gossip cluster inside the simulated network: N real engines (``GossipNode``), real wire encoding and
HMAC sealing, one virtual clock. Tests and ``tests/bench/gossip.py`` drive failures and measure what every member saw.

``warm_start`` gives every member the full member list at incarnation 1 (what a converged push-pull leaves behind),
so a 1,000-member run measures the steady state without simulating a thousand joins first; ``start`` joins them
through seeds like real daemons do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import Keyring
from dpfd.gossip.node import GossipNode
from dpfd.gossip.state import Alive, Event, Member, MemberState
from dpfd.sim.gossipnet import DEFAULT_DELAY, SimNetwork, VirtualClock

SIM_KEY = bytes(range(32))


@dataclass(frozen=True, slots=True)
class Observation:
    """Observer saw member change: a JOIN, UPDATE or LEAVE event at virtual time ``at``."""

    at: float
    observer: str
    event: Event
    member: str
    state: MemberState


@dataclass
class SimCluster:
    n: int
    config: GossipConfig = field(default_factory=GossipConfig.lan)
    seed: int = 1
    loss: float = 0.0
    delay: tuple[float, float] = DEFAULT_DELAY

    def __post_init__(self) -> None:
        self.clock = VirtualClock()
        self.net = SimNetwork(self.clock, self.seed, loss=self.loss, delay=self.delay)
        self.keyring = Keyring([SIM_KEY])
        self.nodes: dict[str, GossipNode] = {}
        self.observations: list[Observation] = []
        self.crashed: set[str] = set()
        for i in range(self.n):
            self.add(self.name(i))

    @staticmethod
    def name(i: int) -> str:
        return f"m{i:04d}"

    @staticmethod
    def addr_of(name: str) -> str:
        return f"{name}:7946"

    def add(self, name: str, meta: bytes = b"") -> GossipNode:
        addr = self.addr_of(name)
        runtime = self.net.attach(addr)
        node = GossipNode(name, addr, self.config, runtime, self.keyring, meta=meta, on_event=self._observer(name))
        runtime.bind(node)
        self.nodes[name] = node
        return node

    def _observer(self, observer: str) -> Callable[[Event, Member], None]:
        def observe(event: Event, m: Member) -> None:
            self.observations.append(Observation(self.clock.now, observer, event, m.name, m.state))

        return observe

    # --- bringing the cluster up -------------------------------------------------------------------------------------

    def warm_start(self) -> None:
        """Every member knows every other as alive at incarnation 1, then starts its timers."""
        alives = [Alive(n.name, 1, n.addr, n.membership.meta) for n in self.nodes.values()]
        for node in self.nodes.values():
            for a in alives:
                if a.node != node.name:
                    node.membership.on_alive(a, self.clock.now)
            node.start()

    def start(self, seeds: int = 1) -> None:
        """Start every member and join it through the first ``seeds`` members, as dpfds join via etcd's list."""
        names = list(self.nodes)
        seed_addrs = [self.addr_of(n) for n in names[:seeds]]
        for node in self.nodes.values():
            node.start()
        for node in self.nodes.values():
            node.join(seed_addrs)

    # --- failures ----------------------------------------------------------------------------------------------------

    def crash(self, name: str) -> None:
        self.net.crash(self.addr_of(name))
        self.nodes[name].stop()
        self.crashed.add(name)

    def live(self) -> list[GossipNode]:
        return [n for n in self.nodes.values() if n.name not in self.crashed]

    # --- what members see --------------------------------------------------------------------------------------------

    def run_for(self, seconds: float) -> None:
        self.clock.run_for(seconds)

    def run_until(self, pred: Callable[[], bool], within: float, check_every: float = 0.05) -> float | None:
        """Virtual seconds from now until ``pred`` held, or None if it did not within ``within``."""
        start = self.clock.now
        at = self.clock.run_until_true(pred, start + within, check_every)
        return None if at is None else at - start

    def state_seen(self, observer: str, member: str) -> MemberState | None:
        m = self.nodes[observer].membership.members.get(member)
        return None if m is None else m.state

    def all_see(self, member: str, states: set[MemberState]) -> bool:
        return all(self.state_seen(n.name, member) in states for n in self.live() if n.name != member)

    def all_have_meta(self, member: str, meta: bytes) -> bool:
        return all(n.membership.members[member].meta == meta for n in self.live())

    def converged(self) -> bool:
        """Every live member sees every live member alive."""
        live = [n.name for n in self.live()]
        return all(self.state_seen(o, m) is MemberState.ALIVE for o in live for m in live if o != m)

    def dead_times(self, member: str, since: float) -> dict[str, float]:
        """When each observer declared ``member`` dead (or saw it leave), in virtual seconds after ``since``."""
        out: dict[str, float] = {}
        for ob in self.observations:
            if ob.member == member and ob.event is Event.LEAVE and ob.at >= since and ob.observer not in out:
                out[ob.observer] = ob.at - since
        return out

    def false_deaths(self, since: float) -> list[Observation]:
        """Members declared dead although they never crashed."""
        return [
            ob
            for ob in self.observations
            if ob.at >= since
            and ob.event is Event.LEAVE
            and ob.state is MemberState.DEAD
            and ob.member not in self.crashed
        ]

    def bytes_sent(self) -> int:
        """Datagram and stream bytes all members sent."""
        return sum(
            self.net.runtime(n.addr).bytes_sent + self.net.runtime(n.addr).stream_bytes_sent
            for n in self.nodes.values()
        )
