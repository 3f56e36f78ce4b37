"""What WatchEvents streams: this node's reports as they change (phases, progress, reconcile results), gossip
membership changes, and the operator's own requests.

Reports are followed through an etcd watch on this node's report keys, the same keys the controller reads: an event
says what the fleet now sees, and needs nothing from the reconcilers themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from dpfd.admin.fanout import Fanout
from dpfd.gossip.view import MemberChange, MemberInfo
from dpfd.store import KeyValue, Store, WatchEvent, keys

log = logging.getLogger(__name__)

RETRY_DELAY = 2.0  # s before watching again after the watch failed


@dataclass(frozen=True, slots=True)
class StepProgress:
    step: str  # download or install
    done: int
    total: int  # 0 when unknown


@dataclass(frozen=True, slots=True)
class AdminEvent:
    type: str  # phase, report, deleted, member, request, drain
    at: float = field(default_factory=time.time)
    kind: str = ""
    namespace: str = ""
    name: str = ""
    phase: str = ""
    previous_phase: str = ""
    message: str = ""
    progress: StepProgress | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def concerns(self, kind: str = "", name: str = "", namespace: str = "") -> bool:
        return (
            (not kind or self.kind == kind)
            and (not name or self.name == name)
            and (not namespace or self.namespace == namespace)
        )


EventHub = Fanout[AdminEvent]


def step_progress(details: dict[str, Any]) -> StepProgress | None:
    """A report's `details.progress` as the provisioning machine and the BFB reconciler write it."""
    p = details.get("progress")
    if not isinstance(p, dict):
        return None
    total = p.get("size") if isinstance(p.get("size"), int) else 0
    for key, step in (("installed", "install"), ("downloaded", "download")):
        done = p.get(key)
        if isinstance(done, int):
            return StepProgress(step, done, int(total or 0))
    return None


def summary(report: dict[str, Any]) -> str:
    """One line on why a report is not done: its first condition that is not True."""
    for c in report.get("conditions") or []:
        if isinstance(c, dict) and c.get("status") != "True":
            text = f"{c.get('type')}: {c.get('reason')}"
            return f"{text}: {c['message']}" if c.get("message") else text
    return ""


def member_event(change: MemberChange, info: MemberInfo) -> AdminEvent:
    fields = {"state": info.state, "address": info.addr}
    if info.meta is not None:
        fields["role"] = info.meta.role
        if info.meta.host:
            fields["host"] = info.meta.host
    return AdminEvent(type="member", name=info.name, message=f"member {info.name} {change.value}", fields=fields)


class ReportFeed:
    """Publishes an event for every change of this node's reports in etcd."""

    def __init__(self, store: Store, node: str, hub: EventHub) -> None:
        self.store = store
        self.node = node
        self.hub = hub
        self._known: dict[str, dict[str, Any]] = {}
        self._listed = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"admin report feed {self.node}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            watch = self.store.watch_prefix(keys.reports_prefix(self.node))
            try:
                async for ev in watch:
                    self._on(ev)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("admin events: watching reports failed, retrying: %s", e)
            finally:
                with contextlib.suppress(Exception):
                    await watch.close()
            await asyncio.sleep(RETRY_DELAY)

    def _on(self, ev: WatchEvent) -> None:
        if ev.type == "RESET":
            fresh: dict[str, dict[str, Any]] = {}
            for kv in ev.snapshot:
                report = _report(kv)
                if report is not None:
                    fresh[kv.key] = report
            if self._listed:  # a re-list after a gap: what changed meanwhile
                for key in self._known.keys() - fresh.keys():
                    self._deleted(key)
                for key, report in fresh.items():
                    self._changed(key, report)
            self._known = fresh
            self._listed = True
        elif ev.kv is not None and ev.type == "PUT":
            changed = _report(ev.kv)
            if changed is not None:
                self._changed(ev.kv.key, changed)
        elif ev.kv is not None and ev.type == "DELETE":
            self._deleted(ev.kv.key)

    def _changed(self, key: str, report: dict[str, Any]) -> None:
        before = self._known.get(key)
        self._known[key] = report
        if before is not None and _same(before, report):
            return
        ref = report.get("ref") or {}
        phase = str(report.get("phase") or "")
        previous = str(before.get("phase") or "") if before is not None else ""
        self.hub.publish(
            AdminEvent(
                type="phase" if before is None or phase != previous else "report",
                kind=str(ref.get("kind", "")),
                namespace=str(ref.get("namespace", "")),
                name=str(ref.get("name", "")),
                phase=phase,
                previous_phase=previous,
                message=summary(report),
                progress=step_progress(report.get("details") or {}),
                fields={"observedGeneration": str(report.get("observedGeneration", ""))},
            )
        )

    def _deleted(self, key: str) -> None:
        before = self._known.pop(key, None)
        try:
            _, ref = keys.parse_node_ref(key, keys.reports_prefix())
        except ValueError:
            return
        previous = str(before.get("phase") or "") if before is not None else ""
        self.hub.publish(AdminEvent(type="deleted", kind=ref.kind, namespace=ref.namespace, name=ref.name,
                                    previous_phase=previous, message="report removed"))  # fmt: skip


def _report(kv: KeyValue) -> dict[str, Any] | None:
    try:
        value = json.loads(kv.value)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return {k: v for k, v in a.items() if k != "updatedAt"} == {k: v for k, v in b.items() if k != "updatedAt"}
