"""DPUServiceIPAM selection and status (pure): clusterSelector on DPUCluster labels, the corev1 nodeSelector on
Node labels and name, every selected Node whatever its dpfd, clusters whose Nodes are unknown, the conditions."""

from __future__ import annotations

from typing import Any

from controller.chains.desired import ClusterNodes, Selection
from controller.ipam.selection import REASON_EXHAUSTED, ipam_conditions, select_nodes
from controller.kube.objects import ObjKey

NS = "dpf-operator-system"


def cluster(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "labels": labels}}


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


NODES = {
    ObjKey(NS, "dc1"): [node("dpu-a", role="worker"), node("dpu-b", role="storage"), node("dpu-c")],
    ObjKey(NS, "dc2"): [node("dpu-x", role="worker")],
}


def known(key: ObjKey) -> ClusterNodes:
    return ClusterNodes(key, NODES.get(key))


def ipam(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "pool1", "namespace": NS, "generation": 3}, "spec": spec}


CLUSTERS = [cluster("dc1", site="a"), cluster("dc2", site="b"), cluster("dc3", site="a")]


def test_no_selectors_pick_every_node_of_every_cluster() -> None:
    sel = select_nodes(ipam({}), CLUSTERS, known)
    assert sel.all_nodes() == ["dpu-a", "dpu-b", "dpu-c", "dpu-x"]
    assert sel.unknown == {ObjKey(NS, "dc3"): "its Nodes are not known yet"}
    assert sel.without_dpfd == {}  # ranges do not wait for a dpfd


def test_cluster_selector_and_node_selector_terms() -> None:
    workers = {"matchExpressions": [{"key": "role", "operator": "In", "values": ["worker"]}]}
    by_name = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["dpu-c"]}]}
    spec = {"clusterSelector": {"matchLabels": {"site": "a"}}, "nodeSelector": {"nodeSelectorTerms": [workers]}}
    assert select_nodes(ipam(spec), CLUSTERS[:2], known).all_nodes() == ["dpu-a"]
    spec["nodeSelector"] = {"nodeSelectorTerms": [workers, by_name]}  # terms are ORed
    assert select_nodes(ipam(spec), CLUSTERS[:2], known).all_nodes() == ["dpu-a", "dpu-c"]
    spec["nodeSelector"] = {"nodeSelectorTerms": []}
    assert select_nodes(ipam(spec), CLUSTERS[:2], known).all_nodes() == []


def test_conditions() -> None:
    obj = ipam({})
    sel = Selection(nodes={ObjKey(NS, "dc1"): ["dpu-a", "dpu-b"]})
    ready, reconciled = ipam_conditions(obj, sel, 2)
    assert (ready.type, ready.status, ready.observedGeneration) == ("Ready", "True", 3)
    assert reconciled.type == "DPUIPAMObjectReconciled" and "pool pool1: 2 node range(s)" in reconciled.message
    ready, _ = ipam_conditions(obj, sel, 0, problem="pool pool1: no range left for dpu-b", reason=REASON_EXHAUSTED)
    assert (ready.status, ready.reason) == ("False", "PoolExhausted")
    assert ready.message == "DPUIPAMObjectReconciled: pool pool1: no range left for dpu-b"
    sel.unknown[ObjKey(NS, "dc3")] = "unreachable"
    ready, _ = ipam_conditions(obj, sel, 2)
    assert (ready.status, ready.reason) == ("False", "Pending") and "dc3: unreachable" in ready.message
