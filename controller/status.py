"""Reports to CR status: `phase`, `conditions`, `observedGeneration` through the status subresource.

Driven by a work queue keyed by object, so bursts coalesce per object (the latest report wins), one
object is never patched twice at once, and the number of workers bounds the API calls in flight.
Reports whose uid is not the live object's are ignored (they answer a deleted incarnation); stale
fencing tokens are already dropped by the ReportCache.

Conditions the controller computes itself (a target's `own_conditions`, e.g. the gossip reachability of a DPU's
daemons) are merged over the report's on every write, and written on their own for an object without a report,
so the report never erases them and they never fight it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import Informer
from controller.kube.objects import Obj, uid_of
from controller.kube.resources import ResourceType
from controller.queue import DONE, Result, WorkQueue, run_workers
from controller.reachability import merge_conditions
from controller.refs import object_ref
from controller.reports import ReportCache
from dpfd.api.conditions import Condition
from dpfd.api.intents import ObjectRef, Report

log = logging.getLogger(__name__)


def base_status(report: Report) -> dict[str, Any]:
    status: dict[str, Any] = {
        "conditions": [c.model_dump(mode="json", exclude_none=True) for c in report.conditions],
        "observedGeneration": report.observedGeneration,
    }
    if report.phase:
        status["phase"] = report.phase
    return status


# DPU status fields a host dpfd may fill in `details` (DPF's DPUStatus names).
DPU_DETAIL_FIELDS = ("bfbVersion", "pciDevice", "requiredReset", "firmware")


def dpu_status(report: Report) -> dict[str, Any]:
    status = base_status(report)
    for name in DPU_DETAIL_FIELDS:
        if name in report.details:
            status[name] = report.details[name]
    return status


def dpu_node(obj: Obj) -> str | None:
    return str((obj.get("spec") or {}).get("nodeName") or "") or None


@dataclass
class StatusTarget:
    """How reports about one kind become its status."""

    resource: ResourceType
    informer: Informer
    node_of: Callable[[Obj], str | None]  # the node whose report speaks for the object
    status_of: Callable[[Report], dict[str, Any]] = field(default=base_status)
    own_conditions: Callable[[Obj], list[Condition]] | None = None  # conditions the controller sets itself


def status_differs(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return any(current.get(k) != v for k, v in wanted.items())


class StatusWriter:
    """Writes reports into CR status.

    Status is an observation, so it yields to work that moves machines: while intents are being produced
    (`busy()`), a status write waits for that work to finish (`wait_idle()`, at most `max_defer` seconds),
    leaving the CPU and the API server to the intents. Waiting also coalesces a burst of reports for one
    object into one write.
    """

    def __init__(
        self,
        client: KubeClient,
        reports: ReportCache,
        targets: list[StatusTarget],
        *,
        concurrency: int = 16,
        busy: Callable[[], bool] = lambda: False,
        wait_idle: Callable[[], Awaitable[None]] | None = None,
        max_defer: float = 2.0,
    ) -> None:
        self.client = client
        self.reports = reports
        self.targets = {t.resource.kind: t for t in targets}
        self.concurrency = concurrency
        self.busy = busy
        self.wait_idle = wait_idle
        self.max_defer = max_defer
        self.queue: WorkQueue[ObjectRef] = WorkQueue("status")
        self.patches = 0

    def enqueue(self, ref: ObjectRef) -> None:
        if ref.kind in self.targets:
            self.queue.add(ref)

    def enqueue_all(self) -> None:
        for target in self.targets.values():
            for obj in target.informer.list():
                meta = obj.get("metadata") or {}
                self.enqueue(
                    object_ref(target.resource.kind, str(meta.get("namespace") or ""), str(meta.get("name", "")))
                )

    async def run(self) -> None:
        try:
            await run_workers(
                self.queue, self.reconcile, self.concurrency, lambda r: f"{r.kind} {r.namespace}/{r.name}"
            )
        finally:
            self.queue.shut_down()

    async def _yield_to_busy_work(self) -> None:
        if self.wait_idle is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.max_defer):  # no task per wait, unlike wait_for
                    await self.wait_idle()

    async def reconcile(self, ref: ObjectRef) -> Result:
        if self.busy():
            await self._yield_to_busy_work()  # then read the object and its latest report afresh
        target = self.targets[ref.kind]
        obj = target.informer.get(ref.namespace, ref.name)
        if obj is None:
            return DONE
        node = target.node_of(obj)
        report = self.reports.latest(node, ref) if node else None
        if report is not None and report.uid != uid_of(obj):
            log.debug(
                "ignoring report for another incarnation",
                extra={"object": f"{ref.kind} {ref.namespace}/{ref.name}", "reportUid": report.uid},
            )
            report = None
        own = target.own_conditions(obj) if target.own_conditions is not None else []
        if report is None and not own:
            return DONE
        current = obj.get("status") or {}
        wanted = target.status_of(report) if report is not None else {}
        if own:
            base = wanted["conditions"] if report is not None else current.get("conditions") or []
            wanted["conditions"] = merge_conditions(base, own, current.get("conditions") or [])
        if not status_differs(current, wanted):
            return DONE
        try:
            await self.client.patch_no_result(
                target.resource, ref.namespace, ref.name, {"status": wanted}, subresource="status"
            )
        except ApiError as exc:
            if exc.not_found:
                return DONE
            raise
        self.patches += 1
        log.debug(
            "status written",
            extra={"object": f"{ref.kind} {ref.namespace}/{ref.name}", "phase": wanted.get("phase", "")},
        )
        return DONE
