"""The admin API of one dpfd, from its configuration and what the daemon has started (NodeServices): the server on
`<runtimeDir>/admin.sock` (and TCP with mTLS when `admin.tcp` is set), the event feed, the log buffer."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from dpfd.admin.events import EventHub, ReportFeed, member_event
from dpfd.admin.fanout import Fanout
from dpfd.admin.logbuffer import LogBuffer
from dpfd.admin.node import AgentView, node_status
from dpfd.admin.server import AdminServer, AdminServerError, TcpListener
from dpfd.admin.service import AdminService, HostAdmin
from dpfd.config import DpfdConfig
from dpfd.host.dms.tls import TlsFiles
from dpfd.services import NodeServices

log = logging.getLogger(__name__)


class AdminApi:
    """The running admin API: ``stop()`` ends the server, the event feed and the log buffer."""

    def __init__(self, server: AdminServer, feed: ReportFeed | None, logs: LogBuffer,
                 unsubscribe: Callable[[], None] | None) -> None:  # fmt: skip
        self.server = server
        self.feed = feed
        self.logs = logs
        self._unsubscribe = unsubscribe

    async def stop(self) -> None:
        await self.server.stop()
        if self.feed is not None:
            await self.feed.stop()
        if self._unsubscribe is not None:
            with contextlib.suppress(ValueError):
                self._unsubscribe()
        self.logs.uninstall()


def host_admin(config: DpfdConfig, agent: AgentView, events: EventHub) -> HostAdmin:
    """The host role's DPUs and the operator's requests about them."""
    from dpfd.admin.dpus import DpuDirectory
    from dpfd.admin.operations import HostOperations
    from dpfd.host.provisioning.requests import OperatorRequests

    directory = DpuDirectory(config.node, config.state_dir, agent)
    operations = HostOperations(config.node, directory, OperatorRequests(config.state_dir), agent.kick, events)
    return HostAdmin(directory, operations)


def admin_service(config: DpfdConfig, services: NodeServices, events: EventHub, logs: LogBuffer) -> AdminService:
    agent = AgentView(services)
    gossip = services.gossip
    host = host_admin(config, agent, events) if config.role == "host" else None
    status = node_status(
        services,
        drain=host.operations.drain_status if host is not None else None,
        dpus=(lambda: len(host.dpus.list())) if host is not None else None,
    )
    return AdminService(gossip.members if gossip is not None else None, status, host=host,
                        intents=agent.intents_and_reports, events=events, logs=logs.lines)  # fmt: skip


def tcp_listener(config: DpfdConfig) -> TcpListener | None:
    tcp = config.admin.tcp
    return TcpListener(tcp.listen, TlsFiles(tcp.ca, tcp.cert, tcp.key)) if tcp is not None else None


async def start_admin(config: DpfdConfig, services: NodeServices) -> AdminApi | None:
    """The admin API on `<runtimeDir>/admin.sock` (dpfctl). Like gossip it is not needed for the node's work: when its
    socket cannot be served, dpfd says why and goes on; a TCP listener that cannot be served leaves the socket."""
    logs = LogBuffer()
    logs.install()
    events: EventHub = Fanout()
    service = admin_service(config, services, events, logs)
    path = config.runtime_dir / "admin.sock"
    server = await _serve(path, service, config.admin.group, tcp_listener(config))
    if server is None:
        logs.uninstall()
        return None
    feed = None
    if services.store is not None:
        feed = ReportFeed(services.store, config.node, events)
        feed.start()
    gossip = services.gossip
    unsubscribe = gossip.subscribe(lambda change, info: events.publish(member_event(change, info))) if gossip else None
    return AdminApi(server, feed, logs, unsubscribe)


async def _serve(path: Path, service: AdminService, group: str, tcp: TcpListener | None) -> AdminServer | None:
    for listener in (tcp, None) if tcp is not None else (None,):
        server = AdminServer(str(path), service=service, group=group, tcp=listener)
        try:
            await server.start()
            return server
        except (AdminServerError, OSError) as e:
            error = f"{type(e).__name__}: {e}"
            if listener is not None:
                log.error("admin API on TCP not started; serving the socket only",
                          extra={"listen": listener.listen, "error": error})  # fmt: skip
                continue
            log.error("admin API not started", extra={"socket": str(path), "error": error})
    return None
