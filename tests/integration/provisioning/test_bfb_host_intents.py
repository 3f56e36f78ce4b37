"""The host role's kinds BFB and Host through a real NodeAgent and etcd: BFB downloads into the host's cache with
progress, Ready and Error reports; discovery reports with DPF's labels, re-scanned on a timer."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from host_netns import bridge_netns, drop_bridge_address

from dpfd.agent import AgentOptions, Backoff, NodeAgent
from dpfd.api.intents import Intent, ObjectRef
from dpfd.api.wellknown import NODE_DPU_ENABLED, NODE_OOB_BRIDGE_CONFIGURED, node_dpu_pci_address, node_dpu_pf0_name
from dpfd.config import DpfdConfig
from dpfd.host.bfb.cache import BfbCache
from dpfd.host.bfb_intent import BfbReconciler
from dpfd.host.host_intent import HostReconciler
from dpfd.host.provisioning.wiring import DiscoveryInventory
from dpfd.sim.bfb_server import BfbServerConfig, BfbServerHandle, Fault, start_bfb_server
from dpfd.sim.sysfs import EmulatedSysfs
from dpfd.store import Store, keys
from tests.waiting import eventually

NODE = "worker-3"
CLUSTER_SCOPED = "_"  # the namespace segment of cluster-scoped refs (contract §3)
NS = "dpf-operator-system"
FAST = AgentOptions(version="test", retry=Backoff(base=0.05, cap=0.5), report_batch_delay=0.005, shutdown_timeout=5.0)


@pytest.fixture
async def bfbs() -> AsyncIterator[BfbServerHandle]:
    server = await start_bfb_server(config=BfbServerConfig(default_size=2 << 20))
    try:
        yield server
    finally:
        await server.close()


def config(tmp_path: Path, endpoints: list[str]) -> DpfdConfig:
    return DpfdConfig.model_validate({"node": NODE, "etcd": {"endpoints": endpoints},
                                      "stateDir": str(tmp_path / "state")})  # fmt: skip


async def put(store: Store, kind: str, namespace: str, name: str, spec: dict[str, Any]) -> ObjectRef:
    ref = ObjectRef(kind=kind, namespace=namespace, name=name)
    intent = Intent(node=NODE, ref=ref, uid=f"uid-{name}", generation=1, spec=spec)
    await store.put(keys.intent_key(NODE, ref), intent.model_dump_json())
    return ref


async def report_when(store: Store, ref: ObjectRef, ok: Any, within: float = 15.0) -> dict[str, Any]:
    import json

    async def probe() -> dict[str, Any] | None:
        kv = await store.get(keys.report_key(NODE, ref))
        r = json.loads(kv.value) if kv is not None else None
        return r if r is not None and ok(r) else None

    got: dict[str, Any] = await eventually(probe, within, f"report of {ref.path()}")
    return got


def ready_condition(r: dict[str, Any]) -> dict[str, Any]:
    [cond] = [c for c in r["conditions"] if c["type"] == "Ready"]
    return dict(cond)


async def test_a_bfb_is_downloaded_once_with_progress_then_ready(
    tmp_path: Path, store: Store, bfbs: BfbServerHandle, etcd_endpoints: list[str]
) -> None:
    bfbs.config.faults["bundle"] = Fault(rate=1 << 20)  # 2 s: the progress shows
    rec = BfbReconciler(NODE, BfbCache(tmp_path / "cache"), retry=Backoff(base=0.1, cap=0.5), progress_interval=0.1)
    agent = NodeAgent(config(tmp_path, etcd_endpoints), store, [rec], FAST)
    await agent.start()
    try:
        ref = await put(store, "BFB", NS, "bundle", {"url": bfbs.url_for("bundle"), "fileName": "bundle.bfb"})
        moving = await report_when(store, ref, lambda r: r["phase"] == "Downloading"
                                   and r["details"]["progress"]["downloaded"] > 0)  # fmt: skip
        assert moving["details"]["progress"]["size"] is not None
        assert ready_condition(moving)["status"] == "False"
        ready = await report_when(store, ref, lambda r: r["phase"] == "Ready")
        assert ready_condition(ready)["status"] == "True"
        cached = rec.cache.path_for(bfbs.url_for("bundle"))
        assert cached is not None
        assert ready["details"]["size"] == cached.stat().st_size
        assert len(ready["details"]["sha256"]) == 64
        assert ready["details"]["fileName"] == "bundle.bfb"
        # A second BFB object with the same URL (another namespace) is the same image: no second download.
        other = await put(store, "BFB", "tenant-b", "bundle", {"url": bfbs.url_for("bundle")})
        again = await report_when(store, other, lambda r: r["phase"] == "Ready")
        assert again["details"]["sha256"] == ready["details"]["sha256"]
        assert again["details"]["fileName"] == "tenant-b-bundle.bfb"
        assert len([g for g in bfbs.server.gets("bundle") if g.method == "GET"]) == 1
    finally:
        await agent.stop()


async def test_a_failed_bfb_download_reports_the_reason_and_is_retried(
    tmp_path: Path, store: Store, bfbs: BfbServerHandle, etcd_endpoints: list[str]
) -> None:
    bfbs.config.faults["gone"] = Fault(status=404)
    rec = BfbReconciler(NODE, BfbCache(tmp_path / "cache"), retry=Backoff(base=0.1, cap=0.3))
    agent = NodeAgent(config(tmp_path, etcd_endpoints), store, [rec], FAST)
    await agent.start()
    try:
        ref = await put(store, "BFB", NS, "gone", {"url": bfbs.url_for("gone")})
        failed = await report_when(store, ref, lambda r: r["phase"] == "Error")
        cond = ready_condition(failed)
        assert (cond["status"], cond["reason"]) == ("False", "HTTPError")
        assert "404" in cond["message"] and "gone.bfb" in cond["message"]
        assert failed["details"]["attempts"] >= 1
        del bfbs.config.faults["gone"]  # the server is fixed: the backoff retry recovers without anyone's help
        await report_when(store, ref, lambda r: r["phase"] == "Ready")
    finally:
        await agent.stop()


@pytest.fixture
def ns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    with bridge_netns("dpf-hi", "203.0.113.1", "203.0.113.254") as name:
        yield name


async def test_the_host_reports_dpfs_discovery_labels_and_rescans(
    tmp_path: Path, store: Store, ns: str, etcd_endpoints: list[str]
) -> None:
    sysfs = EmulatedSysfs(tmp_path / "sys")
    sysfs.add_bluefield(pci="0000:03:00", model="BF3", pf_names=("ens1f0np0", "ens1f1np1"), total_vfs=16)
    inventory = DiscoveryInventory(tmp_path / "sys", netns=ns, max_age=0.0)
    agent = NodeAgent(config(tmp_path, etcd_endpoints), store, [HostReconciler(NODE, inventory, interval=0.2)], FAST)
    await agent.start()
    try:
        ref = await put(store, "Host", CLUSTER_SCOPED, NODE, {})
        first = await report_when(store, ref, lambda r: r["phase"] == "Ready")
        assert first["details"]["labels"] == {
            NODE_DPU_ENABLED: "true",
            node_dpu_pci_address(0): "0000-03-00",
            node_dpu_pf0_name(0): "ens1f0np0",
            NODE_OOB_BRIDGE_CONFIGURED: "",
        }
        assert first["details"]["dpus"] == [
            {"pciAddress": "0000-03-00", "pf0Name": "ens1f0np0", "deviceId": "0xa2dc", "model": "BF3"}
        ]
        # br-dpu loses its address: the next scan (on the timer, no intent change) drops the bridge label.
        await asyncio.to_thread(drop_bridge_address, ns, "203.0.113.1")
        later = await report_when(store, ref, lambda r: NODE_OOB_BRIDGE_CONFIGURED not in r["details"]["labels"])
        assert later["details"]["labels"][NODE_DPU_ENABLED] == "true"
        assert "no IPv4 address" in later["conditions"][0]["message"]
    finally:
        await agent.stop()
