"""NodeAgent against a real etcd: intents in, reports out, retries, serialisation and key hygiene."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path

import pytest
from dpfd_harness import (
    FAST,
    NS,
    delete_intent,
    dpu_ref,
    intent,
    make_config,
    put_intent,
    report,
    wait_for,
    wait_report,
    wait_report_gone,
)

from dpfd.agent import RECONCILED, AgentOptions, Backoff, NodeAgent, Reconciler, ReportRefused, ReportWriter
from dpfd.api.conditions import Condition, ConditionStatus
from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.host.dpu_intent import DpuIntentStore, ownership_reconcilers
from dpfd.store import Put, Store, keys

NODE = "host-a"


@pytest.fixture
async def agents() -> AsyncIterator[list[NodeAgent]]:
    started: list[NodeAgent] = []
    yield started
    for a in started:
        await a.stop(2.0)


async def start_agent(
    agents: list[NodeAgent],
    store: Store,
    tmp_path: Path,
    reconcilers: Iterable[Reconciler] | None = None,
    options: AgentOptions = FAST,
    node: str = NODE,
) -> NodeAgent:
    cfg = make_config(tmp_path, node, ["http://unused:1"])
    recs = list(reconcilers) if reconcilers is not None else ownership_reconcilers(node, cfg.state_dir)
    agent = NodeAgent(cfg, store, recs, options)
    agents.append(agent)
    await agent.start()
    assert await agent.wait_ready(10.0), "agent did not list its intents"
    return agent


def state_file(tmp_path: Path, name: str) -> Path:
    return DpuIntentStore(tmp_path / NODE / "state").path(dpu_ref(name))


async def all_keys(store: Store) -> list[str]:
    kvs, _ = await store.get_prefix(keys.ROOT)
    return sorted(kv.key for kv in kvs)


async def test_dpu_intent_lifecycle(store: Store, agents: list[NodeAgent], tmp_path: Path) -> None:
    ref = dpu_ref("dpu-1")
    await put_intent(store, intent(NODE, "dpu-1", generation=3))
    agent = await start_agent(agents, store, tmp_path)

    r = await wait_report(store, NODE, ref, lambda r: r["observedGeneration"] == 3)
    member_kv = await store.get(keys.member_key(NODE))
    assert member_kv is not None and member_kv.lease != 0
    assert r["fencingToken"] == member_kv.mod_revision == agent.fencing_token > 0
    member = json.loads(member_kv.value)
    assert member["node"] == NODE and member["role"] == "host" and member["version"] == "test"
    assert member["pid"] == os.getpid() and member["startedAt"] and member["addresses"] == []
    assert r["phase"] == "Initializing" and r["node"] == NODE and r["uid"] == "uid-dpu-1"
    [cond] = r["conditions"]
    assert (cond["type"], cond["status"], cond["reason"]) == ("Initialized", "True", "HostAgentAccepted")
    assert cond["message"] == f"dpfd on {NODE} owns this DPU" and cond["observedGeneration"] == 3
    saved = json.loads(state_file(tmp_path, "dpu-1").read_text())
    assert saved["generation"] == 3 and saved["spec"]["serialNumber"] == "SN-dpu-1"

    # A changed intent gives a new report, and the persisted intent follows.
    await put_intent(store, intent(NODE, "dpu-1", generation=4, spec={"serialNumber": "SN-new"}))
    await wait_report(store, NODE, ref, lambda r: r["observedGeneration"] == 4)
    assert json.loads(state_file(tmp_path, "dpu-1").read_text())["spec"] == {"serialNumber": "SN-new"}

    # deleting: true releases the local state and says so.
    await put_intent(store, intent(NODE, "dpu-1", generation=5, deleting=True))
    r = await wait_report(store, NODE, ref, lambda r: r["phase"] == "Deleting")
    assert r["details"] == {"released": True} and r["observedGeneration"] == 5
    assert not state_file(tmp_path, "dpu-1").exists()

    # The intent gone: the report goes too.
    await delete_intent(store, NODE, ref)
    await wait_report_gone(store, NODE, ref)

    # Nothing outside this node's member and report keys was written (the intents are the test's).
    await put_intent(store, intent(NODE, "dpu-2"))
    await wait_report(store, NODE, dpu_ref("dpu-2"), lambda r: r["phase"] == "Initializing")
    for k in await all_keys(store):
        assert k.startswith((keys.intents_prefix(NODE), keys.reports_prefix(NODE), keys.member_key(NODE))), k

    await agent.stop()
    assert await store.get(keys.member_key(NODE)) is None, "member key left behind after stop"


class Flaky:
    """Fails the first `fails` reconciles, then reports Ready."""

    kind = "DPU"

    def __init__(self, fails: int) -> None:
        self.fails = fails
        self.calls: list[float] = []

    async def reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.fails:
            raise RuntimeError(f"firmware query failed (try {len(self.calls)})")
        assert intent is not None
        return Report(node=NODE, ref=ref, observedGeneration=intent.generation, phase="Ready")


async def test_failing_reconcile_is_retried_with_backoff(store: Store, agents: list[NodeAgent], tmp_path: Path) -> None:
    flaky = Flaky(fails=4)
    opts = replace(FAST, retry=Backoff(base=0.1, cap=5.0, jitter=0.0))
    await put_intent(store, intent(NODE, "dpu-f", generation=2))
    await start_agent(agents, store, tmp_path, [flaky], opts)

    def failed(r: dict[str, object]) -> bool:
        conds = r.get("conditions")
        return isinstance(conds, list) and any(c["type"] == RECONCILED for c in conds)

    r = await wait_report(store, NODE, dpu_ref("dpu-f"), failed)
    [cond] = [c for c in r["conditions"] if c["type"] == RECONCILED]
    assert cond["status"] == "False" and cond["reason"] == "ReconcileFailed"
    assert "RuntimeError: firmware query failed" in cond["message"] and cond["observedGeneration"] == 2
    assert r["observedGeneration"] == 2 and r["fencingToken"] > 0

    r = await wait_report(store, NODE, dpu_ref("dpu-f"), lambda r: r["phase"] == "Ready")
    assert not failed(r), "the successful report still carries the failure"
    assert len(flaky.calls) == 5
    gaps = [b - a for a, b in zip(flaky.calls, flaky.calls[1:], strict=False)]
    # 0.1, 0.2, 0.4, 0.8 s: each wait at least its backoff, and doubling.
    for gap, want in zip(gaps, [0.1, 0.2, 0.4, 0.8], strict=True):
        assert gap >= want * 0.95, gaps
    assert gaps[3] > gaps[0] * 4, gaps


class Slow:
    """Takes a while per reconcile and records how many runs of each ref overlap."""

    kind = "DPU"

    def __init__(self) -> None:
        self.active: dict[ObjectRef, int] = defaultdict(int)
        self.max_active = 0
        self.seen: list[int] = []

    async def reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None:
        self.active[ref] += 1
        self.max_active = max(self.max_active, self.active[ref])
        try:
            await asyncio.sleep(0.05)  # stands in for real work (a DMS call)
        finally:
            self.active[ref] -= 1
        assert intent is not None
        self.seen.append(intent.generation)
        return Report(node=NODE, ref=ref, observedGeneration=intent.generation, phase="Ready")


async def test_one_reconcile_per_ref_at_a_time_and_changes_coalesce(
    store: Store, agents: list[NodeAgent], tmp_path: Path
) -> None:
    slow = Slow()
    await start_agent(agents, store, tmp_path, [slow])
    for gen in range(1, 21):
        await put_intent(store, intent(NODE, "dpu-s", generation=gen))
    await wait_report(store, NODE, dpu_ref("dpu-s"), lambda r: r["observedGeneration"] == 20)
    assert slow.max_active == 1
    assert slow.seen == sorted(slow.seen) and slow.seen[-1] == 20
    assert len(slow.seen) < 20, f"changes during a reconcile were not coalesced: {slow.seen}"


class Rogue:
    """A buggy reconciler that answers with another node's report."""

    kind = "DPU"

    async def reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None:
        assert intent is not None
        return Report(node="host-b", ref=ref, observedGeneration=intent.generation, phase="Ready")


async def test_reports_for_other_nodes_are_refused(store: Store, agents: list[NodeAgent], tmp_path: Path) -> None:
    writer = ReportWriter(store, NODE)
    with pytest.raises(ReportRefused, match="writes only its own reports"):
        writer.submit(Report(node="host-b", ref=dpu_ref("x"), observedGeneration=1))
    with pytest.raises(ReportRefused, match="invalid key segment"):
        writer.submit(Report(node=NODE, ref=ObjectRef(kind="DPU", namespace=NS, name="a/b"), observedGeneration=1))

    await put_intent(store, intent(NODE, "dpu-r"))
    await start_agent(agents, store, tmp_path, [Rogue()])
    r = await wait_report(store, NODE, dpu_ref("dpu-r"), lambda r: bool(r["conditions"]))
    assert r["conditions"][0]["reason"] == "ReconcileFailed"
    assert "writes only its own reports" in r["conditions"][0]["message"]
    kvs, _ = await store.get_prefix(keys.reports_prefix("host-b"))
    assert kvs == []


async def test_invalid_intent_and_unhandled_kind_are_reported(
    store: Store, agents: list[NodeAgent], tmp_path: Path
) -> None:
    bad = dpu_ref("dpu-bad")
    await store.put(keys.intent_key(NODE, bad), json.dumps({"node": NODE, "generation": 7}))
    await put_intent(store, intent(NODE, "svc-1", kind="DPUService"))
    await start_agent(agents, store, tmp_path)

    r = await wait_report(store, NODE, bad, lambda r: bool(r["conditions"]))
    c = r["conditions"][0]
    assert (c["type"], c["status"], c["reason"]) == (RECONCILED, "False", "InvalidIntent")
    assert "field 'ref'" in c["message"] and r["observedGeneration"] == 7

    svc = ObjectRef(kind="DPUService", namespace=NS, name="svc-1")
    r = await wait_report(store, NODE, svc, lambda r: bool(r["conditions"]))
    assert r["conditions"][0]["reason"] == "KindNotHandled"
    assert "no reconciler for kind DPUService" in r["conditions"][0]["message"]


async def test_orphaned_reports_and_state_are_released_on_start(
    store: Store, agents: list[NodeAgent], tmp_path: Path
) -> None:
    ghost = dpu_ref("ghost")
    await store.put(keys.report_key(NODE, ghost), json.dumps({"node": NODE, "phase": "Initializing"}))
    leftover = DpuIntentStore(tmp_path / NODE / "state")
    leftover.save(intent(NODE, "leftover"))
    await put_intent(store, intent(NODE, "dpu-1"))
    await start_agent(agents, store, tmp_path)

    await wait_report(store, NODE, dpu_ref("dpu-1"), lambda r: r["phase"] == "Initializing")
    await wait_report_gone(store, NODE, ghost)
    await wait_for(
        lambda: asyncio.sleep(0, leftover.path(dpu_ref("leftover")).exists()),
        lambda exists: not exists,
        what="leftover state file removed",
    )


async def test_resync_does_not_rewrite_unchanged_reports(store: Store, agents: list[NodeAgent], tmp_path: Path) -> None:
    await put_intent(store, intent(NODE, "dpu-1"))
    agent = await start_agent(agents, store, tmp_path, options=replace(FAST, resync_interval=0.05))
    ref = dpu_ref("dpu-1")
    await wait_report(store, NODE, ref, lambda r: r["phase"] == "Initializing")
    kv = await store.get(keys.report_key(NODE, ref))
    assert kv is not None
    await wait_for(lambda: asyncio.sleep(0, agent.writer.skipped), lambda n: n >= 5, what="5 resyncs")
    kv2 = await store.get(keys.report_key(NODE, ref))
    assert kv2 is not None and kv2.mod_revision == kv.mod_revision
    assert await report(store, NODE, ref) == json.loads(kv.value)


async def test_reports_are_batched(store: Store, agents: list[NodeAgent], tmp_path: Path) -> None:
    n = 60
    await store.commit([Put(keys.intent_key(NODE, it.ref), it.model_dump_json()) for it in _many(n)])
    agent = await start_agent(agents, store, tmp_path)
    await wait_for(lambda: store.get_prefix(keys.reports_prefix(NODE)), lambda r: len(r[0]) == n, what="reports")
    assert agent.writer.commits < n / 3, f"{n} reports took {agent.writer.commits} commits"


def _many(n: int) -> list[Intent]:
    return [intent(NODE, f"dpu-{i}") for i in range(n)]


async def test_writer_keeps_transition_time_and_skips_unchanged(store: Store) -> None:
    writer = ReportWriter(store, NODE, batch_delay=0)
    writer.start()
    ref = dpu_ref("dpu-t")

    def rep(status: ConditionStatus, at: str) -> Report:
        cond = Condition(type="Ready", status=status, reason="R", lastTransitionTime=at)
        return Report(node=NODE, ref=ref, observedGeneration=1, phase="P", conditions=[cond])

    try:
        assert writer.submit(rep("False", "2026-01-01T00:00:00Z"))
        assert await writer.flush(5.0)
        assert not writer.submit(rep("False", "2026-01-02T00:00:00Z")), "unchanged report rewritten"
        assert writer.submit(rep("True", "2026-01-03T00:00:00Z"))
        assert await writer.flush(5.0)
        r = await report(store, NODE, ref)
        assert r is not None and r["conditions"][0]["lastTransitionTime"] == "2026-01-03T00:00:00Z"
        assert writer.delete(ref)
        assert await writer.flush(5.0)
        assert await report(store, NODE, ref) is None
        assert not writer.delete(ref), "deleting a report known to be gone queued a write"
    finally:
        await writer.stop()
