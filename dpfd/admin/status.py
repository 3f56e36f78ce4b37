"""What GetStatus answers: who the daemon is, how its etcd session, its work and its gossip member are doing."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from dpfd.gossip.agent import GossipAgent
from dpfd.gossip.keyring import PacketStats


@dataclass(frozen=True, slots=True)
class GossipStatus:
    name: str
    address: str
    health_score: int  # Lifeguard's local health: 0 is healthy
    alive: int
    suspect: int
    dead: int
    left: int
    packets: PacketStats | None = None


@dataclass(frozen=True, slots=True)
class EtcdStatus:
    endpoints: tuple[str, ...]
    endpoint: str = ""  # the one in use
    connected: bool = False
    registered: bool = False
    fencing_token: int = 0
    registrations: int = 0


@dataclass(frozen=True, slots=True)
class WorkStatus:
    """The node agent's: whether it has its first list of intents, how many, and how many reconciles run."""

    ready: bool = False
    intents: int = 0
    busy: int = 0


@dataclass(frozen=True, slots=True)
class DrainStatus:
    draining: bool
    since: float = 0.0
    reason: str = ""
    in_flight: int = 0


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    node: str
    role: str
    version: str
    started: float  # wall clock
    gossip: GossipStatus | None = None  # None when gossip is off
    etcd: EtcdStatus | None = None
    work: WorkStatus | None = None
    drain: DrainStatus | None = None  # host role
    dpus: int = 0  # host role: DPUs it provisions


def gossip_status(agent: GossipAgent) -> GossipStatus | None:
    """The agent's counts, health and packet counters; None until it has started."""
    node = agent.node
    if node is None:
        return None
    states = Counter(m.state for m in agent.members())
    stats = node.packet_stats
    return GossipStatus(
        name=agent.name,
        address=node.addr,
        health_score=node.health_score,
        alive=states["alive"],
        suspect=states["suspect"],
        dead=states["dead"],
        left=states["left"],
        packets=dataclasses.replace(stats),  # a copy: the node's counters go on counting
    )


def status_from(
    node: str, role: str, version: str, started: float, agent: GossipAgent | None = None
) -> Callable[[], DaemonStatus]:
    """A ``status`` callable for AdminServer with who the daemon is and its gossip, read afresh on every GetStatus."""

    def status() -> DaemonStatus:
        return DaemonStatus(node, role, version, started, gossip_status(agent) if agent is not None else None)

    return status
