"""The latest trustworthy report of every (node, object), from `/dpf/v1/reports/`.

A report whose fencing token is lower than the highest seen for that node and object comes from a holder
that has since lost its lock: it is ignored. (Whether its uid matches the live object is checked where
the object is at hand: see status.py and the reconcilers.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import ValidationError

from controller.etcdwatch import PrefixWatch
from controller.refs import same_ref, shared
from dpfd.api.intents import ObjectRef, Report
from dpfd.store import KeyValue, Store
from dpfd.store import keys as store_keys

log = logging.getLogger(__name__)

# (node, object, the report now in force or None when it was deleted)
ReportHandler = Callable[[str, ObjectRef, Report | None], None]


class ReportCache:
    def __init__(self, store: Store) -> None:
        self.watch = PrefixWatch(store, store_keys.reports_prefix())
        self.synced = self.watch.synced
        self.stale_ignored = 0
        self._prefix = store_keys.reports_prefix()
        self._reports: dict[ObjectRef, dict[str, Report]] = {}
        self._highest_token: dict[tuple[str, ObjectRef], int] = {}
        self._handlers: list[ReportHandler] = []
        self.watch.add_handler(self._on_change)

    def add_handler(self, handler: ReportHandler) -> None:
        self._handlers.append(handler)

    def latest(self, node: str, ref: ObjectRef) -> Report | None:
        return self._reports.get(ref, {}).get(node)

    def for_object(self, ref: ObjectRef) -> dict[str, Report]:
        """Reports about `ref`, by node."""
        return dict(self._reports.get(ref, {}))

    async def run(self) -> None:
        await self.watch.run()

    def _on_change(self, key: str, kv: KeyValue | None) -> None:
        try:
            node, parsed = store_keys.parse_node_ref(key, self._prefix)
        except ValueError:
            log.warning("ignoring malformed report key", extra={"key": key})
            return
        ref = shared(parsed)
        if kv is None:
            if self._reports.get(ref, {}).pop(node, None) is not None:
                if not self._reports[ref]:
                    del self._reports[ref]
                self._notify(node, ref, None)
            return
        try:
            report = Report.model_validate_json(kv.value)
        except ValidationError as exc:
            log.warning("ignoring unreadable report", extra={"key": key, "error": str(exc).splitlines()[0]})
            return
        if report.node != node or not same_ref(report.ref, ref):
            log.warning("ignoring report filed under another object's key", extra={"key": key})
            return
        mark = (node, ref)
        if report.fencingToken < self._highest_token.get(mark, 0):
            self.stale_ignored += 1
            log.info(
                "ignoring stale report",
                extra={
                    "object": f"{ref.kind} {ref.namespace}/{ref.name}",
                    "node": node,
                    "fencingToken": report.fencingToken,
                },
            )
            return
        self._highest_token[mark] = report.fencingToken
        self._reports.setdefault(ref, {})[node] = report
        self._notify(node, ref, report)

    def _notify(self, node: str, ref: ObjectRef, report: Report | None) -> None:
        for handler in self._handlers:
            try:
                handler(node, ref, report)
            except Exception:
                log.exception("report handler failed", extra={"node": node})
