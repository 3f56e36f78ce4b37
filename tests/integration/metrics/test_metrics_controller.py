"""The controller's /metrics against the emulated Kubernetes API and a real etcd: a DPUSet's intents and their
status write-back show in the counters."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from controller.app import RunConfig, run_controller
from controller.leader import LeaderElector
from controller.manager import Controller, ControllerOptions
from dpfd.metrics.parse import Scrape, parse
from dpfd.sim.ports import free_port
from dpfd.store import Store
from tests.integration.controller.controller_harness import (
    KubeEnv,
    dpuset_obj,
    intents,
    kube,
    node_obj,
    store,
    write_report,
)
from tests.waiting import eventually

__all__ = ["kube", "store"]  # fixtures


async def _scrape(url: str) -> Scrape | None:
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            assert resp.status == 200
            return parse(await resp.text())
    except aiohttp.ClientConnectionError:
        return None


async def _scrape_when(url: str, ok: object, what: str, within: float = 15.0) -> Scrape:
    async def probe() -> Scrape | None:
        s = await _scrape(url)
        return s if s is not None and ok(s) else None  # type: ignore[operator]

    result: Scrape = await eventually(probe, within, what)
    return result


async def test_controller_metrics(kube: KubeEnv, store: Store, etcd_endpoints: list[str], tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    options = ControllerOptions(events=False)
    cfg = RunConfig(
        str(kube.kubeconfig), etcd_endpoints, "c-metrics", 10.0, options, metrics_listen=f"127.0.0.1:{port}"
    )
    for i in range(2):
        await kube.server.apply_object(node_obj(f"worker-{i}", ip=f"10.0.0.{20 + i}"))
    stop = asyncio.Event()
    electors: list[LeaderElector] = []
    controllers: list[Controller] = []
    task = asyncio.create_task(run_controller(cfg, stop, elector_out=electors, controller_out=controllers))
    try:
        # Elected first, then the term's work starts once the caches are synced: wait for both.
        first = await _scrape_when(
            url,
            lambda s: s.value("dpf_controller_leader") == 1 and bool(s.samples("dpf_controller_queue_depth")),
            "leading, with the term's work queues",
        )
        assert first.value("dpf_controller_leader_terms_total") == 1
        assert first.value("dpf_build_info", component="dpf-controller", identity="c-metrics") == 1
        queues = {lbl["queue"] for _, lbl, _ in first.samples("dpf_controller_queue_depth")}
        assert {"dpuset", "dpu", "status", "nodeeffect", "bfb"} <= queues, queues

        await kube.server.apply_object(dpuset_obj())
        await eventually(lambda: _count_intents(store, 2), 15.0, "two intents")
        written = await _scrape_when(
            url, lambda s: s.value("dpf_controller_intent_writes_total", operation="put") == 2, "two intent puts"
        )
        assert (written.value("dpf_controller_intent_txns_total") or 0) >= 1
        assert (written.value("dpf_controller_reconciles_total", queue="dpuset") or 0) >= 1
        assert (written.value("dpf_controller_reconciles_total", queue="dpu") or 0) >= 2
        timed = written.value("dpf_reconcile_duration_seconds_count", kind="dpuset", result="success")
        assert (timed or 0) >= 1, "the controller's reconciles are timed per queue"
        # The store's instrumentation: the controller's etcd requests are measured like dpfd's.
        assert (written.value("dpf_etcd_request_duration_seconds_count", operation="lease_grant") or 0) >= 1
        assert written.total("dpf_etcd_request_duration_seconds_count") > first.total(
            "dpf_etcd_request_duration_seconds_count"
        )

        # A dpfd's report turns into a status write.
        dpu = next(d for d in kube.dpus() if d["spec"]["nodeName"] == "worker-0")
        before = written.value("dpf_controller_status_writes_total") or 0
        await write_report(store, "worker-0", dpu, observedGeneration=dpu["metadata"]["generation"], phase="Pending")
        await _scrape_when(
            url, lambda s: (s.value("dpf_controller_status_writes_total") or 0) > before, "a status write counted"
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 15.0)
    assert await _scrape(url) is None, "the metrics endpoint outlived the controller"


async def _count_intents(store: Store, n: int) -> bool:
    return len(await intents(store)) == n
