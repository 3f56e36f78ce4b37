"""validate_update: the new object's own problems plus DPF's immutability and no-shrink rules."""

from __future__ import annotations

import copy
from typing import Any

from dpfd.api.validation import validate_update

Obj = dict[str, Any]


def _changed(obj: Obj) -> Obj:
    return copy.deepcopy(obj)


def _problems(old: Obj, new: Obj) -> list[tuple[str, str]]:
    return [(p.path, p.reason) for p in validate_update(old, new)]


def test_unchanged_objects_are_fine(manifests: dict[str, Obj]) -> None:
    for obj in manifests.values():
        assert validate_update(obj, _changed(obj)) == []


def test_bfb_spec_is_immutable(manifests: dict[str, Obj]) -> None:
    old = manifests["BFB/bf-bundle"]
    new = _changed(old)
    new["spec"]["url"] = "http://mirror.example.com/other.bfb"
    assert _problems(old, new) == [
        ("spec.url", 'Invalid value: "http://mirror.example.com/other.bfb": field is immutable')
    ]
    new = _changed(old)
    new["spec"]["fileName"] = "renamed.bfb"
    assert [p for p, _ in _problems(old, new)] == ["spec.fileName"]


def test_a_defaulted_file_name_left_out_of_an_update_is_no_change(manifests: dict[str, Obj]) -> None:
    old = manifests["BFB/bf-bundle"]
    old["spec"]["fileName"] = "dpf-operator-system-bf-bundle.bfb"  # what the webhook stored
    new = _changed(old)
    del new["spec"]["fileName"]
    assert validate_update(old, new) == []


def test_dpuflavor_spec_is_immutable_but_metadata_is_not(manifests: dict[str, Obj]) -> None:
    old = manifests["DPUFlavor/dpf-provisioning-hbn"]
    new = _changed(old)
    new["metadata"]["labels"] = {"team": "network"}
    assert validate_update(old, new) == []
    new["spec"]["nvconfig"][0]["parameters"].append("NUM_VF_MSIX=11")
    del new["spec"]["containerdConfig"]
    assert _problems(old, new) == [
        (
            "spec.containerdConfig",
            "Forbidden: a DPUFlavor's spec is immutable; create a new DPUFlavor instead",
        ),
        ("spec.nvconfig", "Forbidden: a DPUFlavor's spec is immutable; create a new DPUFlavor instead"),
    ]


def test_dpu_node_name_and_once_set_fields(manifests: dict[str, Obj]) -> None:
    old = manifests["DPU/worker-1-0000-03-00"]
    new = _changed(old)
    new["spec"]["nodeName"] = "worker-2"
    new["spec"]["pciAddress"] = "0000-04-00"
    new["spec"]["cluster"]["name"] = "other-cluster"
    assert [p for p, _ in _problems(old, new)] == ["spec.nodeName", "spec.pciAddress", "spec.cluster.name"]
    # An empty cluster name is the allocator's to fill in: setting it is allowed.
    old["spec"]["cluster"]["name"] = ""
    new = _changed(old)
    new["spec"]["cluster"]["name"] = "dpu-cplane-tenant1"
    assert validate_update(old, new) == []


def test_dpucluster_kubeconfig_is_immutable_once_set(manifests: dict[str, Obj]) -> None:
    old = manifests["DPUCluster/dpu-cplane-tenant1"]
    new = _changed(old)
    new["spec"]["kubeconfig"] = "dpu-cplane-tenant1-admin-kubeconfig"  # kamaji sets it once
    assert validate_update(old, new) == []
    newer = _changed(new)
    newer["spec"]["kubeconfig"] = "another-secret"
    assert _problems(new, newer) == [
        (
            "spec.kubeconfig",
            'Invalid value: "another-secret": field is immutable once set (was "dpu-cplane-tenant1-admin-kubeconfig")',
        )
    ]


def test_ipam_pools_may_grow_but_not_shrink(manifests: dict[str, Obj]) -> None:
    old = manifests["DPUServiceIPAM/pool1"]
    grown = _changed(old)
    grown["spec"]["ipv4Subnet"]["subnet"] = "192.168.64.0/19"
    assert validate_update(old, grown) == []
    shrunk = _changed(old)
    shrunk["spec"]["ipv4Subnet"]["subnet"] = "192.168.64.0/21"
    assert _problems(old, shrunk) == [
        (
            "spec.ipv4Subnet.subnet",
            'Invalid value: "192.168.64.0/21": may not shrink: it must contain 192.168.64.0/20, in use',
        )
    ]
    switched = _changed(old)
    switched["spec"] = {"ipv4Network": {"network": "10.8.0.0/16", "prefixSize": 24}}
    assert validate_update(old, switched) == []


def test_update_also_validates_the_new_object(manifests: dict[str, Obj]) -> None:
    old = manifests["BFB/bf-bundle"]
    new = _changed(old)
    new["spec"]["url"] = "ftp://x/y.bfb"
    assert [p for p, _ in _problems(old, new)] == ["spec.url", "spec.url"]  # invalid, and changed


def test_objects_of_other_groups_pass() -> None:
    old = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w"}, "spec": {"a": 1}}
    assert validate_update(old, {**old, "spec": {"a": 2}}) == []
