"""What GetStatus answers: who the daemon is, and how its gossip member is doing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from dpfd.gossip.agent import GossipAgent


@dataclass(frozen=True, slots=True)
class GossipStatus:
    name: str
    address: str
    health_score: int  # Lifeguard's local health: 0 is healthy
    alive: int
    suspect: int
    dead: int
    left: int


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    node: str
    role: str
    version: str
    started: float  # wall clock
    gossip: GossipStatus | None = None  # None when gossip is off


def gossip_status(agent: GossipAgent) -> GossipStatus | None:
    """The agent's counts and health; None until it has started."""
    node = agent.node
    if node is None:
        return None
    states = Counter(m.state for m in agent.members())
    return GossipStatus(
        name=agent.name,
        address=node.addr,
        health_score=node.health_score,
        alive=states["alive"],
        suspect=states["suspect"],
        dead=states["dead"],
        left=states["left"],
    )


def status_from(
    node: str, role: str, version: str, started: float, agent: GossipAgent | None = None
) -> Callable[[], DaemonStatus]:
    """The ``status`` callable for AdminServer, read afresh on every GetStatus."""

    def status() -> DaemonStatus:
        return DaemonStatus(node, role, version, started, gossip_status(agent) if agent is not None else None)

    return status
