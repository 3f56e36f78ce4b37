"""DPUServiceIPAM in the controller with a real host API, a real TLS DPU cluster and real etcd: the pool's
per-node ranges appear in etcd for exactly the DPU Nodes selected (clusterSelector on DPUCluster labels, the
corev1 nodeSelector on the DPU cluster's Node labels), follow label changes (a node keeps its range while it
stays selected), exhaustion shows in the status, and deletion removes the pool before the finalizer goes."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from typing import Any

from controller_harness import NS, PROV, KubeEnv, kube, start_replica, store, wait_until
from test_controller_chains import SVC, add_cluster, condition, dpu_cluster, dpu_node, status_of

from controller.manager import ControllerOptions
from dpfd.sim.kubeapi import KubeApiServer
from dpfd.store import Store
from dpfd.store import keys as store_keys
from dpfd.store.ipam_ranges import PoolRanges
from dpfd.store.ipam_types import NodeRange

__all__ = ["dpu_cluster", "kube", "store"]  # fixtures

KIND = "DPUServiceIPAM"
WORKERS = {"nodeSelectorTerms": [{"matchExpressions": [{"key": "role", "operator": "In", "values": ["worker"]}]}]}


def ipam_obj(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": SVC, "kind": KIND, "metadata": {"name": name, "namespace": NS}, "spec": spec}


def ranges_are(store: Store, pool: str, *nodes: str) -> Any:
    async def check() -> dict[str, NodeRange] | None:
        got = (await PoolRanges(store).read(pool)).ranges
        return got if sorted(got) == sorted(nodes) else None

    return check


def no_ranges(store: Store, pool: str) -> Any:
    async def check() -> bool:
        return not (await PoolRanges(store).read(pool)).ranges

    return check


async def test_ipam_ranges_follow_selection_exhaust_and_go_with_the_object(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str], dpu_cluster: KubeApiServer
) -> None:
    await add_cluster(kube, dpu_cluster, "dc1", {"site": "a"})
    for name, role in (("dpu-a", "worker"), ("dpu-b", "worker"), ("dpu-c", "storage")):
        await dpu_node(dpu_cluster, name, role=role)
    replica = await start_replica(kube, etcd_endpoints, options=ControllerOptions(events=False))
    try:
        spec = {
            "metadata": {"labels": {"svc.dpu.nvidia.com/pool": "pool1"}},
            "ipv4Network": {"network": "198.51.100.0/24", "prefixSize": 25, "gatewayIndex": 1},
            "clusterSelector": {"matchLabels": {"site": "a"}},
            "nodeSelector": WORKERS,
        }
        await kube.server.apply_object(ipam_obj("pool1", spec))
        got = await wait_until(ranges_are(store, "pool1", "dpu-a", "dpu-b"), what="ranges for the selected Nodes")
        assert {n: str(r.subnet) for n, r in got.items()} == {"dpu-a": "198.51.100.0/25", "dpu-b": "198.51.100.128/25"}
        assert got["dpu-b"].gateway == IPv4Address("198.51.100.129")
        assert got["dpu-a"].labels == (("svc.dpu.nvidia.com/pool", "pool1"),)
        obj = kube.server.get_object(SVC, KIND, "pool1", NS)
        assert obj is not None and "svc.dpu.nvidia.com/dpuserviceipam" in obj["metadata"]["finalizers"]
        top = await wait_until(lambda: condition(kube, KIND, "pool1", "Ready").get("status") == "True"
                               and status_of(kube, KIND, "pool1"), what="Ready")  # fmt: skip
        assert top["observedGeneration"] == obj["metadata"]["generation"]
        reconciled = condition(kube, KIND, "pool1", "DPUIPAMObjectReconciled")
        assert reconciled["status"] == "True" and "2 node range(s)" in reconciled["message"]

        # Labels move: dpu-b keeps its subnet, dpu-c takes the one dpu-a gave back.
        await dpu_node(dpu_cluster, "dpu-a", role="storage")
        await dpu_node(dpu_cluster, "dpu-c", role="worker")
        got = await wait_until(ranges_are(store, "pool1", "dpu-b", "dpu-c"), what="ranges follow Node labels")
        assert {n: str(r.subnet) for n, r in got.items()} == {"dpu-b": "198.51.100.128/25", "dpu-c": "198.51.100.0/25"}

        # A third worker does not fit in two /25s: the two keep theirs, the status says who is left out.
        await dpu_node(dpu_cluster, "dpu-d", role="worker")
        ready = await wait_until(lambda: condition(kube, KIND, "pool1", "Ready").get("status") == "False"
                                 and condition(kube, KIND, "pool1", "Ready"), what="exhaustion in the status")  # fmt: skip
        assert ready["reason"] == "PoolExhausted"
        assert "no range left for dpu-d" in ready["message"] and "198.51.100.0/24 holds 2 /25" in ready["message"]
        assert sorted((await PoolRanges(store).read("pool1")).ranges) == ["dpu-b", "dpu-c"]
        await dpu_node(dpu_cluster, "dpu-b", role="storage")  # room again: dpu-d gets dpu-b's subnet
        got = await wait_until(ranges_are(store, "pool1", "dpu-c", "dpu-d"), what="dpu-d's range once there is room")
        assert str(got["dpu-d"].subnet) == "198.51.100.128/25"
        await wait_until(lambda: condition(kube, KIND, "pool1", "Ready").get("status") == "True", what="Ready again")

        # The cluster is no longer selected: no ranges (the pool marker stays until the object goes).
        cluster = {"apiVersion": PROV, "kind": "DPUCluster", "metadata": {"name": "dc1", "namespace": NS,
                   "labels": {"site": "b"}}, "spec": {"type": "static", "version": "v1.30.0", "kubeconfig": "dc1-admin"}}  # fmt: skip
        await kube.server.apply_object(cluster)
        await wait_until(no_ranges(store, "pool1"), what="no ranges once the cluster is not selected")

        cluster["metadata"]["labels"] = {"site": "a"}
        await kube.server.apply_object(cluster)
        await wait_until(ranges_are(store, "pool1", "dpu-c", "dpu-d"), what="ranges back with the cluster")

        # Deletion: the pool's keys go, then the object.
        await kube.server.delete_object(SVC, KIND, "pool1", NS)
        await wait_until(lambda: kube.server.get_object(SVC, KIND, "pool1", NS) is None, what="object gone")
        kvs, _ = await store.get_prefix(store_keys.ipam_pool_prefix("pool1"))
        assert kvs == []
    finally:
        await replica.stop()


async def test_ipv4_subnet_blocks_for_every_node_without_selectors(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str], dpu_cluster: KubeApiServer
) -> None:
    await add_cluster(kube, dpu_cluster, "dc1", {})
    for name in ("dpu-a", "dpu-b"):
        await dpu_node(dpu_cluster, name, role="worker")
    replica = await start_replica(kube, etcd_endpoints, options=ControllerOptions(events=False))
    try:
        spec = {"ipv4Subnet": {"subnet": "203.0.113.0/24", "gateway": "203.0.113.254", "perNodeIPCount": 8}}
        await kube.server.apply_object(ipam_obj("blocks", spec))
        got = await wait_until(ranges_are(store, "blocks", "dpu-a", "dpu-b"), what="a block per Node")
        assert [(str(r.first), str(r.last)) for _, r in sorted(got.items())] == [
            ("203.0.113.1", "203.0.113.8"), ("203.0.113.9", "203.0.113.16")]  # fmt: skip
        assert all(
            r.subnet == IPv4Network("203.0.113.0/24") and str(r.gateway) == "203.0.113.254" for r in got.values()
        )
        await wait_until(lambda: condition(kube, KIND, "blocks", "Ready").get("status") == "True", what="Ready")

        # The same name in another namespace: the pool stays the older object's, the newer one is told so,
        # and deleting the newer one leaves the pool alone.
        other = ipam_obj("blocks", {"ipv4Subnet": {"subnet": "198.51.100.0/24", "gateway": "198.51.100.1",
                                                   "perNodeIPCount": 4}})  # fmt: skip
        other["metadata"]["namespace"] = "other"
        await kube.server.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
        await kube.server.apply_object(other)

        def other_ready() -> dict[str, Any]:
            found = kube.server.get_object(SVC, KIND, "blocks", "other") or {}
            conds = (found.get("status") or {}).get("conditions") or []
            return next((c for c in conds if c["type"] == "Ready"), {})

        ready = await wait_until(other_ready, what="the newer object's status")
        assert ready["status"] == "False" and f"belongs to DPUServiceIPAM {NS}/blocks" in ready["message"]
        assert (await PoolRanges(store).read("blocks")).ranges == got
        await kube.server.delete_object(SVC, KIND, "blocks", "other")
        await wait_until(lambda: kube.server.get_object(SVC, KIND, "blocks", "other") is None, what="other gone")
        assert (await PoolRanges(store).read("blocks")).ranges == got
    finally:
        await replica.stop()
