"""ReportCache against a real etcd (stale fencing tokens, unreadable reports) and the report → status mapping."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from controller.reports import ReportCache
from controller.status import dpu_status, status_differs
from dpfd.api.conditions import Condition
from dpfd.api.intents import ObjectRef, Report
from dpfd.store import Store
from dpfd.store import keys as store_keys
from tests.waiting import eventually

REF = ObjectRef(kind="DPU", namespace="dpf", name="host-0-0000-03-00")


async def wait_until(cond: Callable[[], Any], within: float = 5.0) -> None:
    await eventually(cond, within, poll=0.001)


def report(token: int, phase: str) -> bytes:
    r = Report(node="host-0", ref=REF, uid="u1", observedGeneration=1, phase=phase, fencingToken=token)
    return r.model_dump_json().encode()


async def test_stale_and_unreadable_reports_are_ignored(etcd_endpoints: list[str]) -> None:
    key = store_keys.report_key("host-0", REF)
    async with await Store.connect(etcd_endpoints) as store:
        await store.put(key, report(5, "OS Installing"))
        cache = ReportCache(store)
        seen: list[str | None] = []
        cache.add_handler(lambda node, ref, r: seen.append(r.phase if r else None))
        task = asyncio.create_task(cache.run())
        try:
            await asyncio.wait_for(cache.synced.wait(), 5)
            assert seen == ["OS Installing"], "the initial state comes from the snapshot"
            await store.put(key, report(4, "Error"))  # an older lock holder: stale
            await store.put(key, b"{not json")  # unreadable
            await store.put(key, report(6, "Ready"))
            await wait_until(lambda: seen[-1] == "Ready")
            assert seen == ["OS Installing", "Ready"]
            assert cache.stale_ignored == 1
            latest = cache.latest("host-0", REF)
            assert latest is not None and latest.fencingToken == 6
            await store.delete(key)
            await wait_until(lambda: seen[-1] is None)
            assert cache.latest("host-0", REF) is None
        finally:
            task.cancel()


def test_dpu_status_from_a_report() -> None:
    cond = Condition(type="Ready", status="True", reason="Provisioned", lastTransitionTime="2026-01-01T00:00:00Z")
    r = Report(
        node="n",
        ref=REF,
        uid="u",
        observedGeneration=3,
        phase="Ready",
        conditions=[cond],
        details={"bfbVersion": "2.9.1", "released": False},
    )
    st = dpu_status(r)
    assert st == {
        "phase": "Ready",
        "observedGeneration": 3,
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Provisioned",
                "message": "",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            }
        ],
        "bfbVersion": "2.9.1",
    }
    assert not status_differs({**st, "firmware": {"nic": "x"}}, st), "fields the report does not set are kept"
    assert status_differs({**st, "phase": "OS Installing"}, st)
