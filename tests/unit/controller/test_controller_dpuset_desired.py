"""DPUSet desired state: DPF's DPU names, labels, ownerReference, dpuSelector index, deselected nodes."""

from __future__ import annotations

from typing import Any

import pytest

from controller.reconcilers.dpu_intent import dpu_intent
from controller.reconcilers.dpuset_desired import (
    DPU_FINALIZER,
    desired_dpus,
    dpu_indexes,
    dpu_statistics,
    node_labels_patch,
    outdated,
)

NFD = "feature.node.kubernetes.io/"


def node(name: str, labels: dict[str, str], ip: str | None = "10.0.0.1") -> dict[str, Any]:
    addresses = [{"type": "Hostname", "address": name}]
    if ip:
        addresses.append({"type": "InternalIP", "address": ip})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"addresses": addresses},
    }


def dpuset(**spec_overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeSelector": {"matchLabels": {f"{NFD}dpu-enabled": "true"}},
        "strategy": {"type": "Recreate"},
        "dpuTemplate": {
            "annotations": {"provisioning.dpu.nvidia.com/reboot-command": "skip"},
            "spec": {
                "bfb": {"name": "bf-bundle"},
                "dpuFlavor": "dpf-provisioning-hbn",
                "nodeEffect": {"drain": {"automaticNodeReboot": True}},
                "cluster": {"nodeLabels": {"dpf.nvidia.com/role": "worker"}},
                "automaticNodeReboot": True,
            },
        },
    }
    spec.update(spec_overrides)
    return {
        "apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
        "kind": "DPUSet",
        "metadata": {
            "name": "dpuset-a",
            "namespace": "dpf-operator-system",
            "uid": "uid-set",
            "labels": {"team": "net"},
        },
        "spec": spec,
    }


def host(name: str, *pcis: str, enabled: bool = True, ip: str | None = "10.0.0.1") -> dict[str, Any]:
    labels = {f"{NFD}dpu-enabled": "true"} if enabled else {}
    for i, pci in enumerate(pcis):
        labels[f"{NFD}dpu-{i}-pci-address"] = pci
        labels[f"{NFD}dpu-{i}-pf0-name"] = f"ens{i}f0np0"
        labels[f"{NFD}dpu-{i}-pci-address-present"] = "true"
    return node(name, labels, ip)


def test_dpu_named_labelled_and_owned_like_dpf() -> None:
    [dpu] = desired_dpus(dpuset(), [host("Worker-1", "0000-03-00", ip="10.0.0.7")])
    meta = dpu["metadata"]
    assert dpu["apiVersion"] == "provisioning.dpu.nvidia.com/v1alpha1" and dpu["kind"] == "DPU"
    assert meta["name"] == "worker-1-0000-03-00"  # lowercased node name, then the PCI label value
    assert meta["namespace"] == "dpf-operator-system"
    assert meta["labels"] == {
        "team": "net",
        "provisioning.dpu.nvidia.com/dpuset-name": "dpuset-a",
        "provisioning.dpu.nvidia.com/dpuset-namespace": "dpf-operator-system",
        "provisioning.dpu.nvidia.com/dpu-pciAddress": "0000-03-00",
        "provisioning.dpu.nvidia.com/dpu-pf-name": "ens0f0np0",
        "provisioning.dpu.nvidia.com/dpu-host-ip": "10.0.0.7",
    }
    assert meta["annotations"] == {"provisioning.dpu.nvidia.com/reboot-command": "skip"}
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
            "kind": "DPUSet",
            "name": "dpuset-a",
            "uid": "uid-set",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert meta["finalizers"] == [DPU_FINALIZER]
    assert dpu["spec"] == {
        "nodeName": "Worker-1",
        "bfb": "bf-bundle",
        "pciAddress": "0000-03-00",
        "nodeEffect": {"drain": {"automaticNodeReboot": True}},
        "cluster": {"nodeLabels": {"dpf.nvidia.com/role": "worker"}},
        "dpuFlavor": "dpf-provisioning-hbn",
        "automaticNodeReboot": True,
    }


def test_only_nodes_matching_the_node_selector() -> None:
    dpus = desired_dpus(dpuset(), [host("a", "0000-03-00"), host("b", "0000-03-00", enabled=False)])
    assert [d["metadata"]["name"] for d in dpus] == ["a-0000-03-00"]


def test_match_expressions_in_node_selector() -> None:
    ds = dpuset(nodeSelector={"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]})
    n1 = host("a", "0000-03-00")
    n1["metadata"]["labels"]["zone"] = "z1"
    n2 = host("b", "0000-03-00")
    n2["metadata"]["labels"]["zone"] = "z2"
    assert [d["spec"]["nodeName"] for d in desired_dpus(ds, [n1, n2])] == ["a"]


def test_empty_dpu_selector_means_index_zero_only() -> None:
    dpus = desired_dpus(dpuset(), [host("a", "0000-03-00", "0000-04-00")])
    assert [d["metadata"]["name"] for d in dpus] == ["a-0000-03-00"]


def test_dpu_selector_key_picks_the_index() -> None:
    ds = dpuset(dpuSelector={f"{NFD}dpu-1-pci-address-present": "true"})
    [dpu] = desired_dpus(ds, [host("a", "0000-03-00", "0000-04-00")])
    assert dpu["metadata"]["name"] == "a-0000-04-00"
    assert dpu["metadata"]["labels"]["provisioning.dpu.nvidia.com/dpu-pf-name"] == "ens1f0np0"
    assert dpu["spec"]["pciAddress"] == "0000-04-00"


def test_dpu_selector_not_satisfied_selects_nothing_on_that_node() -> None:
    ds = dpuset(dpuSelector={f"{NFD}dpu-1-pci-address-present": "true"})
    assert desired_dpus(ds, [host("a", "0000-03-00")]) == []


def test_dpu_indexes_rules() -> None:
    labels = {f"{NFD}dpu-0-pci-address": "x", f"{NFD}dpu-2-pf0-name": "p2", "other": "v"}
    assert dpu_indexes({}, labels) == [0]
    assert dpu_indexes({}, {"other": "v"}) == []
    assert dpu_indexes({f"{NFD}dpu-2-pf0-name": "p2", f"{NFD}dpu-0-pci-address": "x"}, labels) == [0, 2]
    assert dpu_indexes({f"{NFD}dpu-2-pf0-name": "wrong"}, labels) == []
    assert dpu_indexes({"other": "v"}, labels) == [], "a key without an index picks nothing"


def test_deselected_node_has_no_desired_dpu() -> None:
    nodes = [host("a", "0000-03-00"), host("b", "0000-03-00")]
    before = {d["metadata"]["name"] for d in desired_dpus(dpuset(), nodes)}
    nodes[1]["metadata"]["labels"].pop(f"{NFD}dpu-enabled")
    after = {d["metadata"]["name"] for d in desired_dpus(dpuset(), nodes)}
    assert before == {"a-0000-03-00", "b-0000-03-00"}
    assert after == {"a-0000-03-00"}


def test_node_without_pci_label_is_reported_not_created() -> None:
    ds = dpuset(dpuSelector={f"{NFD}dpu-1-pf0-name": "ens1f0np0"})
    n = host("a", "0000-03-00", "0000-04-00")
    n["metadata"]["labels"][f"{NFD}dpu-1-pci-address"] = ""
    problems: list[str] = []
    assert desired_dpus(ds, [n], problems) == []
    assert len(problems) == 1 and "Node a" in problems[0] and "dpu-1-pci-address" in problems[0]


def test_missing_node_selector_selects_nothing_and_bad_selector_names_the_dpuset() -> None:
    ds = dpuset()
    del ds["spec"]["nodeSelector"]
    assert desired_dpus(ds, [host("a", "0000-03-00")]) == []
    bad = dpuset(nodeSelector={"matchExpressions": [{"key": "k", "operator": "Sometimes"}]})
    with pytest.raises(ValueError, match="DPUSet dpf-operator-system/dpuset-a"):
        desired_dpus(bad, [host("a", "0000-03-00")])


def test_template_defaults_and_missing_ip() -> None:
    ds = dpuset()
    tspec = ds["spec"]["dpuTemplate"]["spec"]
    del tspec["automaticNodeReboot"], tspec["cluster"], tspec["nodeEffect"]
    [dpu] = desired_dpus(ds, [host("a", "0000-03-00", ip=None)])
    assert dpu["spec"]["automaticNodeReboot"] is True
    assert dpu["spec"]["cluster"] == {"nodeLabels": {}}
    assert "nodeEffect" not in dpu["spec"]
    assert "provisioning.dpu.nvidia.com/dpu-host-ip" not in dpu["metadata"]["labels"]


def test_desired_is_sorted_and_linear_for_many_nodes() -> None:
    nodes = [host(f"node-{i:04d}", "0000-03-00") for i in range(1000)]
    dpus = desired_dpus(dpuset(), reversed(nodes))
    names = [d["metadata"]["name"] for d in dpus]
    assert len(names) == 1000 and names == sorted(names)


def test_node_labels_patch_merges_changed_labels_only() -> None:
    ds = dpuset()
    [dpu] = desired_dpus(ds, [host("a", "0000-03-00")])
    assert node_labels_patch(ds, dpu) is None
    ds["spec"]["dpuTemplate"]["spec"]["cluster"]["nodeLabels"] = {"dpf.nvidia.com/role": "edge", "new": "1"}
    assert node_labels_patch(ds, dpu) == {
        "spec": {"cluster": {"nodeLabels": {"dpf.nvidia.com/role": "edge", "new": "1"}}}
    }


def test_outdated_when_bfb_or_flavor_differs() -> None:
    ds = dpuset()
    [dpu] = desired_dpus(ds, [host("a", "0000-03-00")])
    assert not outdated(ds, dpu)
    ds["spec"]["dpuTemplate"]["spec"]["bfb"]["name"] = "bf-bundle-2"
    assert outdated(ds, dpu)


def test_statistics_count_phases_with_initializing_for_new_dpus() -> None:
    dpus = [
        {"status": {"phase": "Ready"}},
        {"status": {"phase": "Ready"}},
        {},
        {"status": {"phase": "OS Installing"}},
    ]
    assert dpu_statistics(dpus) == {"Ready": 2, "Initializing": 1, "OS Installing": 1}


def test_dpu_intent_carries_spec_generation_and_deletion() -> None:
    [dpu] = desired_dpus(dpuset(), [host("a", "0000-03-00")])
    dpu["metadata"].update(uid="u1", generation=3)
    intent = dpu_intent(dpu)
    assert intent.node == "a" and intent.ref.kind == "DPU" and intent.ref.name == "a-0000-03-00"
    assert intent.uid == "u1" and intent.generation == 3 and intent.spec == dpu["spec"]
    assert intent.labels["provisioning.dpu.nvidia.com/dpuset-name"] == "dpuset-a"
    assert not intent.deleting
    dpu["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert dpu_intent(dpu).deleting
    dpu["spec"]["nodeName"] = ""
    with pytest.raises(ValueError, match=r"DPU dpf-operator-system/a-0000-03-00: spec\.nodeName"):
        dpu_intent(dpu)
