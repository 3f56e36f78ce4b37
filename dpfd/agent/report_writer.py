"""Writes one node's reports to etcd: only its own keys, only when changed, coalesced and batched."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

from dpfd import fastjson
from dpfd.agent.backoff import Backoff
from dpfd.agent.log import EventLog, obj
from dpfd.api.intents import ObjectRef, Report
from dpfd.metrics.instruments import PHASE_TRANSITIONS
from dpfd.store import Delete, KeyValue, Put, Store, keys

# Marks a report known to be absent from etcd (so deleting it again is skipped).
_ABSENT: dict[str, Any] = {"__absent__": True}


class ReportRefused(ValueError):
    """A report this node's dpfd must not write (another node's, or a malformed key)."""


class ReportWriter:
    def __init__(
        self,
        store: Store,
        node: str,
        *,
        batch_delay: float = 0.01,
        commit_timeout: float = 10.0,
        retry: Backoff | None = None,
    ) -> None:
        keys.reports_prefix(node)  # validates the node name
        self.store = store
        self.node = node
        self._batch_delay = batch_delay
        self._commit_timeout = commit_timeout
        self._retry = retry or Backoff(base=0.2, cap=5.0)
        self._log = EventLog(logging.getLogger(__name__), node=node)
        # key -> report as JSON-ready dict, or _ABSENT for a deletion.
        self._written: dict[str, dict[str, Any]] = {}
        self._inflight: dict[str, dict[str, Any]] = {}
        self._pending: dict[str, dict[str, Any]] = {}
        self._wakeup = asyncio.Event()  # set once a batch is due (batch_delay after its first change)
        self._batch_timer: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        self.skipped = 0

    def key_for(self, report_node: str, ref: ObjectRef) -> str:
        """The key a report goes to; refuses anything but this node's own report keys."""
        if report_node != self.node:
            raise ReportRefused(
                f"report for {obj(ref)} names node {report_node!r}: dpfd on {self.node!r} writes only its own reports"
            )
        try:
            return keys.report_key(self.node, ref)
        except ValueError as e:
            raise ReportRefused(f"report for {obj(ref)}: {e}") from None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"reports {self.node}")

    async def stop(self) -> None:
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _latest(self, key: str) -> dict[str, Any] | None:
        for layer in (self._pending, self._inflight, self._written):
            if key in layer:
                return layer[key]
        return None

    def current(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The report for `ref` as last queued or written (JSON form), or None if none is known."""
        latest = self._latest(self.key_for(self.node, ref))
        return None if latest is None or latest is _ABSENT else latest

    def submit(self, report: Report) -> bool:
        """Queue `report` for writing; False if it equals what is (being) written already."""
        key = self.key_for(report.node, report.ref)
        new = report.model_dump(mode="json")
        prev = self._latest(key)
        if prev is not None and prev is not _ABSENT:
            _keep_transition_times(new, prev)
            if _comparable(new) == _comparable(prev):
                self.skipped += 1
                return False
        phase = new.get("phase") or ""
        if phase and (prev is None or prev.get("phase") != phase):
            PHASE_TRANSITIONS.labels(report.ref.kind, phase).inc()
        self._queue(key, new)
        return True

    def phase_counts(self) -> dict[tuple[str, str], int]:
        """How many of this node's reports, as last queued or written, are in each (kind, phase)."""
        counts: dict[tuple[str, str], int] = {}
        for key, value in {**self._written, **self._inflight, **self._pending}.items():
            if value is _ABSENT:
                continue
            kind = key.rsplit("/", 3)[1]  # .../<kind>/<namespace>/<name>
            k = (kind, str(value.get("phase") or ""))
            counts[k] = counts.get(k, 0) + 1
        return counts

    def delete(self, ref: ObjectRef) -> bool:
        """Queue deletion of this node's report for `ref`; False if it is known to be absent already."""
        key = self.key_for(self.node, ref)
        if self._latest(key) is _ABSENT:
            return False
        self._queue(key, _ABSENT)
        return True

    def seed(self, kvs: list[KeyValue]) -> list[ObjectRef]:
        """Learn which reports exist in etcd (after a list); returns their refs."""
        refs: list[ObjectRef] = []
        for kv in kvs:
            try:
                node, ref = keys.parse_node_ref(kv.key, keys.reports_prefix())
                value = json.loads(kv.value)
            except ValueError:
                continue
            if node != self.node:
                continue
            refs.append(ref)
            if kv.key not in self._pending and kv.key not in self._inflight:
                self._written[kv.key] = value if isinstance(value, dict) else {}
        return refs

    def _queue(self, key: str, value: dict[str, Any]) -> None:
        self._pending[key] = value
        self._idle.clear()
        if self._wakeup.is_set() or self._batch_timer is not None:
            return  # a batch is already due or scheduled: this change joins it
        if self._batch_delay > 0:
            # A timer rather than a sleep in the writer task: one wakeup of the task per batch, not two.
            self._batch_timer = asyncio.get_running_loop().call_later(self._batch_delay, self._batch_due)
        else:
            self._wakeup.set()

    def _batch_due(self) -> None:
        self._batch_timer = None
        self._wakeup.set()

    async def flush(self, within: float) -> bool:
        """Wait until everything queued is written; False if that did not happen `within` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
            return True
        except TimeoutError:
            return False

    @property
    def pending(self) -> int:
        return len(self._pending) + len(self._inflight)

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wakeup.wait()  # concurrent reconciles landed in one batch meanwhile
            self._wakeup.clear()
            self._inflight, self._pending = self._pending, {}
            if not self._inflight:
                self._idle.set()
                continue
            ops: list[Put | Delete] = [
                Delete(k) if v is _ABSENT else Put(k, fastjson.dumps(v)) for k, v in self._inflight.items()
            ]
            try:
                async with asyncio.timeout(self._commit_timeout):  # unlike wait_for, no extra task per commit
                    await self.store.commit(ops)
            except asyncio.CancelledError:
                self._requeue()
                raise
            except Exception as e:
                failures += 1
                delay = self._retry.delay(failures)
                self._log.warning("report_write_failed", reports=len(ops), error=_err(e), retry_in=f"{delay:.2f}s")
                self._requeue()
                await asyncio.sleep(delay)
                self._wakeup.set()
                continue
            failures = 0
            self.commits += 1
            self._written.update(self._inflight)
            self._inflight = {}
            if not self._pending:
                self._idle.set()

    def _requeue(self) -> None:
        # Newer values queued meanwhile win over the batch that failed.
        for k, v in self._inflight.items():
            self._pending.setdefault(k, v)
        self._inflight = {}


def _comparable(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != "updatedAt"}


def _keep_transition_times(new: dict[str, Any], prev: dict[str, Any]) -> None:
    """A condition whose status did not change keeps its lastTransitionTime (metav1 semantics)."""
    old = {(c.get("type"), c.get("status")): c.get("lastTransitionTime") for c in prev.get("conditions", [])}
    for c in new.get("conditions", []):
        t = old.get((c.get("type"), c.get("status")))
        if t:
            c["lastTransitionTime"] = t


def _err(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
