"""The pure parts of the DPU intent context: the context itself, DPUCluster choice, node-effect decisions,
BFB status aggregation and discovery label merges."""

from __future__ import annotations

from typing import Any

import pytest

from controller.kube.objects import ObjKey
from controller.nodeeffect import ANNOTATION as NODE_EFFECT_ANNOTATION
from controller.reconcilers.bfb_status import aggregate, bfb_status, file_name_of
from controller.reconcilers.cluster_alloc import NoClusterAvailable, assigned_counts, choose_cluster
from controller.reconcilers.cluster_nodes import node_labels_of
from controller.reconcilers.dpu_context import dpu_context, num_vfs_of
from controller.reconcilers.host_discovery import discovery_labels_patch, is_discovery_label
from controller.reconcilers.node_effects import Action, decide
from dpfd.api.conditions import Condition
from dpfd.api.intents import ObjectRef, Report

NS = "dpf"


def dpu(name: str = "h1-0000-03-00", *, cluster: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"nodeName": "h1", "bfb": "bf", "dpuFlavor": "fl", **spec}
    if cluster is not None:
        body["cluster"] = cluster
    return {"metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"}, "spec": body}


def bfb(name: str = "bf", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS, "uid": "bfb-uid", "generation": 1},
        "spec": {"url": "http://x/a.bfb", **spec},
    }


def cluster(name: str, phase: str | None = "Ready", max_nodes: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "static", "version": "v1.30"}
    if max_nodes is not None:
        spec["maxNodes"] = max_nodes
    obj: dict[str, Any] = {"metadata": {"name": name, "namespace": NS}, "spec": spec}
    if phase:
        obj["status"] = {"phase": phase}
    return obj


# -- context -----------------------------------------------------------------------------------------


def test_context_is_empty_until_things_are_known() -> None:
    assert dpu_context(dpu()) == {}


def test_context_resolves_bfb_flavor_cluster_host_and_answers() -> None:
    flavor = {
        "metadata": {"name": "fl", "namespace": NS},
        "spec": {"nvconfig": [{"device": "*", "parameters": ["PF_TOTAL_SF=20", "NUM_OF_VFS=46"]}]},
    }
    host = {"metadata": {"name": "h1", "annotations": {"a": "1", NODE_EFFECT_ANNOTATION: "{}"}}}
    ctx = dpu_context(
        dpu(cluster={"name": "dc1", "namespace": "clusters"}),
        bfb={**bfb(), "status": {"phase": "Ready"}},
        flavor=flavor,
        join_command="kubeadm join 1.2.3.4:6443 --token a.b --discovery-token-ca-cert-hash sha256:00",
        host=host,
        node_effect={"applied": True, "message": "ok"},
        cluster_node_ready=False,
    )
    assert ctx["bfb"] == {"name": "bf", "url": "http://x/a.bfb", "fileName": f"{NS}-bf.bfb", "phase": "Ready"}
    assert ctx["flavor"]["nvconfig"][0]["parameters"] == ["PF_TOTAL_SF=20", "NUM_OF_VFS=46"]
    assert ctx["numVFs"] == 46
    assert ctx["cluster"] == {
        "name": "dc1",
        "namespace": "clusters",
        "joinCommand": "kubeadm join 1.2.3.4:6443 --token a.b --discovery-token-ca-cert-hash sha256:00",
    }
    assert ctx["nodeEffect"] == {"applied": True, "message": "ok"}
    assert ctx["clusterNodeReady"] is False
    assert ctx["hostAnnotations"] == {"a": "1"}  # the controller's own node-effect record is left out
    assert "mtu" not in ctx


def test_context_bfb_keeps_an_explicit_file_name_and_defaults_the_phase() -> None:
    ctx = dpu_context(dpu(), bfb=bfb(fileName="mine.bfb"))
    assert ctx["bfb"]["fileName"] == "mine.bfb" and ctx["bfb"]["phase"] == "Initializing"


def test_context_cluster_namespace_defaults_to_the_dpus() -> None:
    assert dpu_context(dpu(cluster={"name": "dc1"}))["cluster"] == {"name": "dc1", "namespace": NS}
    assert "cluster" not in dpu_context(dpu(cluster={"name": "", "nodeLabels": {"a": "b"}}))


def test_num_vfs_absent_without_the_parameter() -> None:
    assert num_vfs_of({"nvconfig": [{"parameters": ["PF_TOTAL_SF=20"]}]}) is None
    assert num_vfs_of({}) is None


# -- cluster choice ----------------------------------------------------------------------------------


def test_choose_cluster_packs_the_fullest_ready_cluster_with_room() -> None:
    clusters = [cluster("a", max_nodes=10), cluster("b", max_nodes=10), cluster("c", phase="NotReady")]
    counts = {ObjKey(NS, "a"): 2, ObjKey(NS, "b"): 5, ObjKey(NS, "c"): 0}
    assert choose_cluster(clusters, counts)["metadata"]["name"] == "b"


def test_choose_cluster_breaks_ties_by_name_and_skips_full_ones() -> None:
    clusters = [cluster("b", max_nodes=2), cluster("a", max_nodes=2), cluster("z", max_nodes=1)]
    assert choose_cluster(clusters, {})["metadata"]["name"] == "a"
    full = {ObjKey(NS, "z"): 1, ObjKey(NS, "a"): 2}
    assert choose_cluster(clusters, full)["metadata"]["name"] == "b"


def test_choose_cluster_says_why_nothing_fits() -> None:
    with pytest.raises(NoClusterAvailable, match=r"dpf/a is not Ready \(Creating\); dpf/b is full \(1/1 DPUs\)"):
        choose_cluster([cluster("a", phase="Creating"), cluster("b", max_nodes=1)], {ObjKey(NS, "b"): 1})
    with pytest.raises(NoClusterAvailable, match="there are no DPUClusters"):
        choose_cluster([], {})


def test_assigned_counts_include_pending_and_skip_deleting() -> None:
    deleting = dpu("d", cluster={"name": "a"})
    deleting["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    dpus = [dpu("x", cluster={"name": "a"}), dpu("y"), deleting]
    pending = {ObjKey(NS, "y"): ObjKey(NS, "b"), ObjKey(NS, "new"): ObjKey(NS, "b")}
    assert assigned_counts(dpus, pending) == {ObjKey(NS, "a"): 1, ObjKey(NS, "b"): 2}


# -- node effect decisions ---------------------------------------------------------------------------

TAINT = {"taint": {"key": "k", "effect": "NoSchedule"}}


def report(phase: str, uid: str = "uid-h1-0000-03-00", **details: Any) -> Report:
    ref = ObjectRef(kind="DPU", namespace=NS, name="h1-0000-03-00")
    return Report(node="h1", ref=ref, uid=uid, observedGeneration=1, phase=phase, details=details)


def test_decide_applies_what_the_host_asks() -> None:
    got = decide(dpu(nodeEffect=TAINT), report("Node Effect", nodeEffect={"request": "apply", "effect": TAINT}))
    assert got == Action("apply", TAINT)


def test_decide_reverts_at_ready_error_deletion_and_on_request() -> None:
    d = dpu(nodeEffect=TAINT)
    assert decide(d, report("Ready", nodeEffect={"request": "apply", "effect": TAINT})) == Action("revert", TAINT)
    assert decide(d, report("Error")) == Action("revert", TAINT)
    assert decide(d, report("Rebooting", nodeEffect={"request": "revert", "effect": TAINT})) == Action("revert", TAINT)
    d["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert decide(d, None) == Action("revert", TAINT)


def test_decide_ignores_other_incarnations_and_silence() -> None:
    d = dpu(nodeEffect=TAINT)
    assert decide(d, None) is None
    assert decide(d, report("Node Effect", uid="old", nodeEffect={"request": "apply"})) is None
    assert decide(d, report("Initializing")) is None


def test_decide_defaults_to_dpfs_drain_effect() -> None:
    got = decide(dpu(), report("Node Effect", nodeEffect={"request": "apply"}))
    assert got == Action("apply", {"drain": {"automaticNodeReboot": True}})


# -- BFB status --------------------------------------------------------------------------------------


def bfb_report(node: str, phase: str, **kw: Any) -> Report:
    ref = ObjectRef(kind="BFB", namespace=NS, name="bf")
    return Report(node=node, ref=ref, uid="bfb-uid", observedGeneration=1, phase=phase, **kw)


def failed(node: str, reason: str, message: str) -> Report:
    cond = Condition(type="Ready", status="False", reason=reason, message=message)
    return bfb_report(node, "Error", conditions=[cond])


def test_bfb_phases_follow_the_hosts() -> None:
    b = bfb()
    assert aggregate(b, [], {})[0:2] == ("Initializing", "NoHosts")
    assert aggregate(b, ["h1", "h2"], {})[0] == "Initializing"
    progress = {"progress": {"downloaded": 50, "size": 200}}
    phase, reason, msg = aggregate(b, ["h1", "h2"], {"h1": bfb_report("h1", "Downloading", details=progress)})
    assert (phase, reason) == ("Downloading", "Downloading")
    assert msg == "downloaded on 0 of 2 host(s); downloading on h1 25%; waiting for h2"
    both = {"h1": bfb_report("h1", "Ready"), "h2": bfb_report("h2", "Ready")}
    assert aggregate(b, ["h1", "h2"], both) == ("Ready", "Downloaded", "downloaded on 2 host(s)")


def test_bfb_error_names_every_failing_host() -> None:
    reports = {
        "h1": bfb_report("h1", "Ready"),
        "h2": failed("h2", "DNSFailure", "cannot resolve x"),
        "h3": failed("h3", "DNSFailure", "cannot resolve x"),
    }
    phase, reason, msg = aggregate(bfb(), ["h1", "h2", "h3"], reports)
    assert (phase, reason) == ("Error", "DNSFailure")
    assert (
        msg == "download failed on 2 of 3 host(s): h2: DNSFailure: cannot resolve x; h3: DNSFailure: cannot resolve x"
    )
    reports["h3"] = failed("h3", "Timeout", "slow")
    assert aggregate(bfb(), ["h1", "h2", "h3"], reports)[1] == "DownloadFailed"


def test_bfb_reports_of_another_incarnation_do_not_count() -> None:
    stale = Report(node="h1", ref=ObjectRef(kind="BFB", namespace=NS, name="bf"), uid="old", observedGeneration=1,
                   phase="Ready")  # fmt: skip
    assert aggregate(bfb(), ["h1"], {"h1": stale})[0] == "Initializing"
    gone = failed("h9", "Timeout", "slow")  # from a host no longer known
    assert aggregate(bfb(), ["h1"], {"h1": bfb_report("h1", "Ready"), "h9": gone})[0] == "Ready"


def test_bfb_status_keeps_transition_time_and_file_name() -> None:
    b = bfb()
    first = bfb_status(b, ["h1"], {"h1": bfb_report("h1", "Downloading")})
    assert first["fileName"] == f"{NS}-bf.bfb" == file_name_of(b)
    assert first["observedGeneration"] == 1 and first["phase"] == "Downloading"
    cond = first["conditions"][0]
    cond["lastTransitionTime"] = "2000-01-01T00:00:00Z"
    b["status"] = first
    again = bfb_status(b, ["h1"], {"h1": bfb_report("h1", "Downloading")})
    assert again["conditions"][0]["lastTransitionTime"] == "2000-01-01T00:00:00Z"
    deleting = bfb_status(b, [], {}, deleting_message="deletion waits: still used by DPU x")
    assert deleting["phase"] == "Deleting"
    assert deleting["conditions"][0]["message"] == "deletion waits: still used by DPU x"


# -- discovery labels --------------------------------------------------------------------------------

P = "feature.node.kubernetes.io/"


def test_discovery_labels_merge_and_remove_only_discovery_keys() -> None:
    current = {f"{P}dpu-enabled": "true", f"{P}dpu-1-pci-address": "0000-04-00", "team": "a", f"{P}cpu-x": "y"}
    reported = {f"{P}dpu-enabled": "true", f"{P}dpu-0-pci-address": "0000-03-00", "team": "evil"}
    assert discovery_labels_patch(current, reported) == {
        f"{P}dpu-1-pci-address": None,
        f"{P}dpu-0-pci-address": "0000-03-00",
    }
    assert discovery_labels_patch(reported | {"team": "a"}, reported) is None


@pytest.mark.parametrize(
    ("key", "ok"),
    [
        (f"{P}dpu-enabled", True),
        (f"{P}dpu-oob-bridge-configured", True),
        (f"{P}dpu-12-pf0-name", True),
        (f"{P}dpu-0-ps-id", True),
        (f"{P}dpu-0-other", False),
        (f"{P}cpu-model", False),
        ("provisioning.dpu.nvidia.com/dpu-enabled", False),
    ],
)
def test_is_discovery_label(key: str, ok: bool) -> None:
    assert is_discovery_label(key) is ok


def test_dpu_node_labels_add_dpfs_host_and_bfb_version() -> None:
    d = dpu(cluster={"name": "dc1", "nodeLabels": {"role": "worker"}})
    d["status"] = {"bfbVersion": "2.9.1-40"}
    assert node_labels_of(d) == {
        "role": "worker",
        "provisioning.dpu.nvidia.com/host": "h1",
        "provisioning.dpu.nvidia.com/DOCA-BFB-version": "2.9.1-40",
    }
    d["status"] = {"bfbVersion": "not a label value!"}
    assert "provisioning.dpu.nvidia.com/DOCA-BFB-version" not in node_labels_of(d)
