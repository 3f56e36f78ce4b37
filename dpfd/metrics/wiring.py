"""dpfd's /metrics: the server (when `metrics.listen` is set) and the collectors of the daemon's parts as they start.

The server starts before etcd is reached, so a dpfd stuck connecting can still be scraped (dpf_etcd_session_up 0).
An address it cannot bind is logged, not fatal: metrics are not worth a node that does not run.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from dpfd.agent.log import EventLog
from dpfd.metrics.collectors import Metrics, agent_metrics, gossip_metrics, process_metrics, store_metrics
from dpfd.metrics.registry import REGISTRY, Registry
from dpfd.metrics.server import MetricsServer

if TYPE_CHECKING:
    from dpfd.agent.agent import NodeAgent
    from dpfd.config import DpfdConfig
    from dpfd.gossip.agent import GossipAgent
    from dpfd.store import Store

log = EventLog(logging.getLogger(__name__))


class DaemonMetrics:
    """One dpfd's metrics endpoint. `start()`, then `watch_*` each part once it runs, then `stop()`."""

    def __init__(self, config: DpfdConfig, version: str) -> None:
        self.config = config
        self.version = version
        self.registry = Registry()  # this daemon's scrape-time metrics; the instruments are in REGISTRY
        self.server: MetricsServer | None = None
        self._metrics = Metrics(self.registry)

    @property
    def enabled(self) -> bool:
        return bool(self.config.metrics.listen)

    async def start(self) -> None:
        if not self.enabled:
            return
        process_metrics(self._metrics, "dpfd", self.version, role=self.config.role, node=self.config.node)
        server = MetricsServer(self.config.metrics.listen, (REGISTRY, self.registry))
        try:
            await server.start()
        except OSError as e:
            log.error("metrics_not_served", listen=self.config.metrics.listen, error=f"{type(e).__name__}: {e}")
            return
        self.server = server
        log.info("metrics_served", url=server.url)

    def watch_store(self, store: Store) -> None:
        if self.enabled:
            store_metrics(self._metrics, store)

    def watch_agent(self, agent: NodeAgent) -> None:
        if self.enabled:
            agent_metrics(self._metrics, agent)

    def watch_gossip(self, gossip: GossipAgent | None) -> None:
        if self.enabled and gossip is not None:
            gossip_metrics(self._metrics, gossip)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        self._metrics.close()
