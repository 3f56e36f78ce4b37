"""The admin API's view of one running dpfd (NodeServices): its node agent, read at each request because the daemon
starts the agent after the admin API, and its status put together from every part."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dpfd.admin.status import DaemonStatus, DrainStatus, EtcdStatus, WorkStatus, gossip_status
from dpfd.agent.intent_view import IntentEntry
from dpfd.api.intents import ObjectRef
from dpfd.services import NodeServices


class AgentView:
    """What the node agent knows now; empty (and kicks go nowhere) before it has started."""

    def __init__(self, services: NodeServices) -> None:
        self.services = services

    def intents(self) -> list[IntentEntry]:
        agent = self.services.agent
        if agent is None:
            return []
        return [e for ref in agent.view.refs() if (e := agent.view.get(ref)) is not None]

    def report(self, ref: ObjectRef) -> dict[str, Any] | None:
        agent = self.services.agent
        return agent.writer.current(ref) if agent is not None else None

    def intents_and_reports(self) -> list[tuple[IntentEntry, dict[str, Any] | None]]:
        return [(e, self.report(e.ref)) for e in self.intents()]

    def kick(self, ref: ObjectRef) -> None:
        agent = self.services.agent
        if agent is not None:
            agent.kick(ref)


def node_status(
    services: NodeServices,
    drain: Callable[[], DrainStatus] | None = None,
    dpus: Callable[[], int] | None = None,
) -> Callable[[], DaemonStatus]:
    """GetStatus's answer, read afresh on every call: ``drain`` and ``dpus`` for the host role."""
    config = services.config

    def status() -> DaemonStatus:
        agent, store = services.agent, services.store
        etcd = EtcdStatus(endpoints=tuple(config.etcd.endpoints))
        work = WorkStatus()
        if store is not None:
            etcd = EtcdStatus(endpoints=etcd.endpoints, endpoint=store.endpoint)
        if agent is not None:
            etcd = EtcdStatus(
                endpoints=etcd.endpoints,
                endpoint=etcd.endpoint,
                connected=agent.connected,
                registered=agent.registered.is_set(),
                fencing_token=agent.fencing_token,
                registrations=agent.registrations,
            )
            work = WorkStatus(ready=agent.ready.is_set(), intents=len(agent.view), busy=agent.busy)
        gossip = services.gossip
        return DaemonStatus(
            node=config.node,
            role=config.role,
            version=services.version,
            started=services.started,
            gossip=gossip_status(gossip) if gossip is not None else None,
            etcd=etcd,
            work=work,
            drain=drain() if drain is not None else None,
            dpus=dpus() if dpus is not None else 0,
        )

    return status
