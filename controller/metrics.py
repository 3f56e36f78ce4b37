"""The controller's /metrics: leadership, work queues, intents and status written, and the parts it shares with
dpfd (etcd request latency from the store, gossip, the process).

Everything here is read at scrape time from counters the parts keep anyway (the publisher's stats, the status
writer's patches, each work queue's length and processed count). Those parts live for one leadership term; the
totals carry over from term to term so that the counters only go up within a process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from controller.queue import WorkQueue
from dpfd.metrics.collectors import Metrics, gossip_metrics, process_metrics, store_metrics
from dpfd.metrics.registry import REGISTRY, Reading, Registry
from dpfd.metrics.server import MetricsServer

if TYPE_CHECKING:
    from controller.leader import LeaderElector
    from controller.manager import Controller, _LeaderWork
    from dpfd.gossip.agent import GossipAgent
    from dpfd.store import Store

log = logging.getLogger(__name__)

# How deep below a term's work to look for work queues: work -> family -> reconciler -> queue.
_QUEUE_SEARCH_DEPTH = 3


def work_queues(work: object) -> Iterator[WorkQueue[object]]:
    """Every WorkQueue held by a term's work, its reconciler families and their reconcilers.

    Found by looking through their attributes rather than asking each family: the families stay unaware of
    metrics, and a family added later is measured without a change here."""
    seen: set[int] = set()
    level = [work]
    for _ in range(_QUEUE_SEARCH_DEPTH + 1):
        below: list[object] = []
        for holder in level:
            for value in getattr(holder, "__dict__", {}).values():
                if id(value) in seen:
                    continue
                seen.add(id(value))
                if isinstance(value, WorkQueue):
                    yield value
                elif type(value).__module__.startswith("controller."):
                    below.append(value)
        level = below


class _TermTotals:
    """Counters kept by a term's parts, summed over every term this process led (the last one maybe running)."""

    def __init__(self, controller: Controller, read: Callable[[_LeaderWork], dict[tuple[str, ...], float]]) -> None:
        self._controller = controller
        self._read = read
        self._done: dict[tuple[str, ...], float] = {}
        # The term counted live: kept after controller.work is cleared, until the term has ended, so that the
        # total does not dip while the term stops.
        self._current: _LeaderWork | None = None
        controller.term_ended.append(self._ended)

    def _ended(self, work: _LeaderWork) -> None:
        self._add(self._done, work)
        if self._current is work:
            self._current = None

    def _add(self, into: dict[tuple[str, ...], float], work: _LeaderWork) -> None:
        for key, value in self._read(work).items():
            into[key] = into.get(key, 0.0) + value

    def __call__(self) -> Reading:
        if self._controller.work is not None:
            self._current = self._controller.work
        totals = dict(self._done)
        if self._current is not None:
            self._add(totals, self._current)
        return list(totals.items())


def _intent_writes(work: _LeaderWork) -> dict[tuple[str, ...], float]:
    stats = work.publisher.stats
    return {("put",): float(stats.puts), ("delete",): float(stats.deletes)}


def _intent_txns(work: _LeaderWork) -> dict[tuple[str, ...], float]:
    return {(): float(work.publisher.stats.txns)}


def _intent_failures(work: _LeaderWork) -> dict[tuple[str, ...], float]:
    return {(): float(work.publisher.stats.failures)}


def _status_writes(work: _LeaderWork) -> dict[tuple[str, ...], float]:
    return {(): float(work.status.patches)}


def _processed(work: _LeaderWork) -> dict[tuple[str, ...], float]:
    counts: dict[tuple[str, ...], float] = {}
    for q in work_queues(work):
        counts[(q.name,)] = counts.get((q.name,), 0.0) + q.processed
    return counts


def _single(totals: _TermTotals) -> Callable[[], float]:
    return lambda: sum(v for _, v in totals())


class ControllerMetrics:
    """One controller replica's /metrics. `start()`, `watch_*` the parts as they are made, `stop()`."""

    def __init__(self, listen: str, identity: str, version: str) -> None:
        self.listen = listen
        self.registry = Registry()  # this replica's scrape-time metrics; the store's instruments are in REGISTRY
        self.server: MetricsServer | None = None
        self._metrics = Metrics(self.registry)
        process_metrics(self._metrics, "dpf-controller", version, identity=identity)

    async def start(self) -> None:
        """Serve; an address that cannot be bound is logged, and the controller runs without metrics."""
        server = MetricsServer(self.listen, (REGISTRY, self.registry))
        try:
            await server.start()
        except OSError as e:
            log.error("metrics not served", extra={"listen": self.listen, "error": f"{type(e).__name__}: {e}"})
            return
        self.server = server
        log.info("metrics served", extra={"url": server.url})

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None
        self._metrics.close()

    def watch_store(self, store: Store) -> None:
        store_metrics(self._metrics, store)

    def watch_gossip(self, gossip: GossipAgent | None) -> None:
        if gossip is not None:
            gossip_metrics(self._metrics, gossip)

    def watch_elector(self, elector: LeaderElector) -> None:
        m = self._metrics
        m.gauge(
            "dpf_controller_leader", "1 while this replica is the leader, else 0.", lambda: float(elector.is_leader)
        )
        m.counter(
            "dpf_controller_leader_terms_total", "Leadership terms this replica began.", lambda: float(elector.terms)
        )

    def watch_controller(self, controller: Controller) -> None:
        m = self._metrics

        def depth() -> Reading:
            work = controller.work
            if work is None:
                return []
            lengths: dict[str, float] = {}
            for q in work_queues(work):
                lengths[q.name] = lengths.get(q.name, 0.0) + len(q)
            return [((name,), n) for name, n in lengths.items()]

        m.labelled(
            "gauge",
            "dpf_controller_queue_depth",
            "Keys waiting in a work queue of the leader (not counting those being reconciled), by queue.",
            ["queue"],
            depth,
        )
        m.labelled(
            "counter",
            "dpf_controller_reconciles_total",
            "Keys a work queue of the leader handed back after reconciling them, by queue.",
            ["queue"],
            _TermTotals(controller, _processed),
        )
        m.labelled(
            "counter",
            "dpf_controller_intent_writes_total",
            "Intents the leader wrote to etcd, by operation (put or delete).",
            ["operation"],
            _TermTotals(controller, _intent_writes),
        )
        m.counter(
            "dpf_controller_intent_txns_total",
            "etcd transactions that carried the leader's intent writes.",
            _single(_TermTotals(controller, _intent_txns)),
        )
        m.counter(
            "dpf_controller_intent_flush_failures_total",
            "Batches of intent writes that failed (and were retried).",
            _single(_TermTotals(controller, _intent_failures)),
        )
        m.counter(
            "dpf_controller_status_writes_total",
            "Status patches the leader wrote to custom resources.",
            _single(_TermTotals(controller, _status_writes)),
        )
        m.counter(
            "dpf_controller_reports_stale_total",
            "Reports ignored because they carry an older fencing token than one already seen for their object.",
            lambda: float(controller.reports.stale_ignored),
        )
