"""The fan-out's pure rules: selection, child intents, child names back to their set, and the status."""

from __future__ import annotations

from typing import Any

from controller.chains.desired import (
    ClusterNodes,
    child_intent,
    fanout_status,
    select,
    set_of_child,
)
from controller.chains.family import CHAINS, INTERFACES
from controller.chains.status import status_patch
from controller.kube.objects import ObjKey
from dpfd.api.conditions import Condition
from dpfd.api.intents import Intent, ObjectRef, Report

NS = "ns"


def dsi(cluster_selector: Any = None, node_selector: Any = None, *, deleting: bool = False) -> dict[str, Any]:
    set_spec: dict[str, Any] = {"template": {"metadata": {"labels": {"if": "p0"}},
                                             "spec": {"interfaceType": "pf", "pf": {"pfID": 0}}}}  # fmt: skip
    if node_selector is not None:
        set_spec["nodeSelector"] = node_selector
    spec: dict[str, Any] = {"template": {"spec": set_spec}}
    if cluster_selector is not None:
        spec["clusterSelector"] = cluster_selector
    meta: dict[str, Any] = {"name": "p0", "namespace": NS, "uid": "u1", "generation": 3}
    if deleting:
        meta["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return {"kind": "DPUServiceInterface", "metadata": meta, "spec": spec}


def cluster(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "labels": labels}}


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


NODES = {
    ObjKey(NS, "a"): [node("dpu-1", role="w"), node("dpu-2", role="s"), node("dpu-3", role="w")],
    ObjKey(NS, "b"): [node("dpu-9", role="w")],
}


def known(key: ObjKey) -> ClusterNodes:
    return ClusterNodes(key, NODES.get(key))


def test_selection_by_cluster_labels_node_labels_and_membership() -> None:
    clusters = [cluster("a", site="x"), cluster("b", site="y"), cluster("c", site="x")]
    sel = select(dsi({"matchLabels": {"site": "x"}}, {"matchLabels": {"role": "w"}}), clusters, known,
                 lambda n: n != "dpu-3")  # fmt: skip
    assert sel.nodes == {ObjKey(NS, "a"): ["dpu-1"]}
    assert sel.without_dpfd == {ObjKey(NS, "a"): ["dpu-3"]}
    assert sel.unknown == {ObjKey(NS, "c"): "its Nodes are not known yet"}


def test_no_selectors_select_everything() -> None:
    sel = select(dsi(), [cluster("a"), cluster("b")], known, lambda n: True)
    assert sel.all_nodes() == ["dpu-1", "dpu-2", "dpu-3", "dpu-9"]
    sel = select(dsi({}, {}), [cluster("a"), cluster("b")], known, lambda n: True)
    assert sel.all_nodes() == ["dpu-1", "dpu-2", "dpu-3", "dpu-9"]


def test_child_intent_is_dpf_child_with_node_and_template_labels() -> None:
    i = child_intent(INTERFACES, dsi(deleting=True), "dpu-1")
    assert i.ref == ObjectRef(kind="ServiceInterface", namespace=NS, name="p0-dpu-1")
    assert (i.node, i.uid, i.generation, i.deleting) == ("dpu-1", "u1", 3, True)
    assert i.spec == {"interfaceType": "pf", "pf": {"pfID": 0}, "node": "dpu-1"}
    assert i.labels == {"if": "p0"}
    assert child_intent(CHAINS, dsi(), "dpu-1").ref.kind == "ServiceChain"


def test_set_of_child() -> None:
    ref = ObjectRef(kind="ServiceInterface", namespace=NS, name="p0-x-dpu-1")
    assert set_of_child(ref, "dpu-1") == ObjKey(NS, "p0-x")
    assert set_of_child(ref, "dpu-2") is None
    assert set_of_child(ObjectRef(kind="ServiceInterface", namespace=NS, name="-dpu-1"), "dpu-1") is None


def _report(i: Intent, ready: bool, *, uid: str | None = None, gen: int | None = None) -> Report:
    cond = Condition(type="Ready", status="True" if ready else "False", reason="R", message="m")
    return Report(node=i.node, ref=i.ref, uid=uid or i.uid, observedGeneration=gen if gen is not None else i.generation,
                  conditions=[cond])  # fmt: skip


def test_status_counts_only_current_ready_reports() -> None:
    obj = dsi()
    sel = select(obj, [cluster("a")], known, lambda n: True)
    intents = {n: child_intent(INTERFACES, obj, n) for n in sel.all_nodes()}
    reports = {
        "dpu-1": _report(intents["dpu-1"], True),
        "dpu-2": _report(intents["dpu-2"], True, gen=2),  # an older generation
        "dpu-3": _report(intents["dpu-3"], True, uid="old"),  # another incarnation
    }
    st = fanout_status(INTERFACES, obj, sel, intents, lambda i: reports.get(i.node))
    n = st.numbers[ObjKey(NS, "a")]
    assert (n.numberApplied, n.numberReady) == (3, 1)
    top, reconciled, ready = st.conditions
    assert (top.type, top.status, reconciled.status, ready.status) == ("Ready", "False", "True", "False")
    assert "1 of 3" in ready.message and "generation 3 not observed" in ready.message
    assert "another incarnation" in ready.message
    reports = {k: _report(v, True) for k, v in intents.items()}
    st = fanout_status(INTERFACES, obj, sel, intents, lambda i: reports.get(i.node))
    assert [c.status for c in st.conditions] == ["True", "True", "True"]
    assert all(c.observedGeneration == 3 for c in st.conditions)


def test_status_pending_cluster_and_deletion() -> None:
    obj = dsi()
    sel = select(obj, [cluster("zz")], known, lambda n: True)
    st = fanout_status(CHAINS, obj, sel, {}, lambda i: None)
    assert (st.conditions[1].type, st.conditions[1].reason) == ("ServiceChainSetReconciled", "Pending")
    assert st.conditions[0].message.startswith("ServiceChainSetReconciled: DPUCluster ns/zz")
    st = fanout_status(INTERFACES, dsi(deleting=True), sel, {}, lambda i: None)
    assert st.conditions[0].reason == "AwaitingDeletion"


def test_status_patch_keeps_transition_times_and_skips_no_ops() -> None:
    obj = dsi()
    st = fanout_status(INTERFACES, obj, select(obj, [], known, lambda n: True), {}, lambda i: None)
    patch = status_patch(obj, st.conditions)
    assert patch is not None and patch["observedGeneration"] == 3
    written = {**obj, "status": patch}
    for c in written["status"]["conditions"]:
        c["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    assert status_patch(written, st.conditions) is None  # same statuses: the old transition times stand
