"""The sets' pure rules: the set object DPF writes, the patch bringing an existing one there, its status, and the
CRDs a DPU cluster gets."""

from __future__ import annotations

from typing import Any

from controller.chains.desired import SetNumbers
from controller.chains.family import CHAINS, INTERFACES
from controller.chains.setobjects import (
    dpu_cluster_crds,
    merge_patch_to,
    set_body,
    set_conditions,
    set_status_patch,
    set_update_patch,
)
from dpfd.sim.kubeapi.patch import merge_patch


def parent(**template_meta: Any) -> dict[str, Any]:
    return {
        "kind": "DPUServiceChain",
        "metadata": {"name": "ch", "namespace": "ns", "uid": "u", "generation": 4, "labels": {"host": "only"}},
        "spec": {"clusterSelector": {"matchLabels": {"a": "b"}},
                 "template": {"metadata": template_meta,
                              "spec": {"nodeSelector": {"matchLabels": {"r": "w"}},
                                       "template": {"spec": {"switches": [{"ports": []}]}}}}},
    }  # fmt: skip


def test_set_body_is_the_template_with_dpf_finalizer_and_no_owner() -> None:
    body = set_body(CHAINS, parent(labels={"x": "1"}, annotations={"n": "v"}))
    assert body == {
        "apiVersion": "svc.dpu.nvidia.com/v1alpha1",
        "kind": "ServiceChainSet",
        "metadata": {"name": "ch", "namespace": "ns", "finalizers": ["dpu.nvidia.com/servicechainset"],
                     "labels": {"x": "1"}, "annotations": {"n": "v"}},
        "spec": {"nodeSelector": {"matchLabels": {"r": "w"}}, "template": {"spec": {"switches": [{"ports": []}]}}},
    }  # fmt: skip
    assert "labels" not in set_body(CHAINS, parent())["metadata"]  # the parent's own labels are not copied


def test_merge_patch_to_gives_the_desired_object_under_rfc7386() -> None:
    cases = [
        ({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}, {"b": {"c": 5}, "l": [1], "e": {"f": 0}}),
        ({"a": {"b": {"c": 1}}}, {"a": {"b": {"d": 2}}}),
        ({}, {"x": [{"y": 1}]}),
    ]
    for current, desired in cases:
        assert merge_patch(current, merge_patch_to(current, desired)) == desired


def test_update_patch_only_when_something_differs() -> None:
    desired = set_body(INTERFACES, parent(labels={"x": "1"}))
    current = {**desired, "metadata": {**desired["metadata"], "resourceVersion": "7", "generation": 1}}
    assert set_update_patch(current, desired) is None
    current["metadata"] = {**current["metadata"], "labels": {"x": "0", "stale": "y"}, "finalizers": ["other"]}
    current["spec"] = {**current["spec"], "nodeSelector": None}
    patch = set_update_patch(current, desired)
    assert patch is not None
    assert patch["metadata"]["labels"] == {"x": "1", "stale": None}
    assert patch["metadata"]["finalizers"] == ["other", "dpu.nvidia.com/serviceinterfaceset"]
    assert patch["metadata"]["resourceVersion"] == "7"  # a finalizer change is guarded
    assert merge_patch(current["spec"], patch["spec"]) == desired["spec"]


def test_set_conditions_ready_pending_and_awaiting_deletion() -> None:
    ready = {c.type: c for c in set_conditions(INTERFACES, SetNumbers(2, 2), 3, deleting=False)}
    assert [ready[t].status for t in ("Ready", "ServiceInterfacesReconciled", "ServiceInterfacesReady")] == ["True"] * 3
    assert all(c.observedGeneration == 3 for c in ready.values())
    pending = {c.type: c for c in set_conditions(CHAINS, SetNumbers(2, 1, ["ch-dpu-b: no report yet"]), 1,
                                                 deleting=False)}  # fmt: skip
    assert (pending["Ready"].status, pending["Ready"].reason) == ("False", "Pending")
    assert pending["ServiceChainsReady"].message == "1 of 2 ServiceChain(s) ready; ch-dpu-b: no report yet"
    many = SetNumbers(12, 0, [f"c-{i}: x" for i in range(12)])
    assert set_conditions(CHAINS, many, 1, deleting=False)[2].message.endswith("c-9: x; and 2 more")
    gone = {c.type: c for c in set_conditions(CHAINS, SetNumbers(1, 0), 1, deleting=True)}
    assert (gone["Ready"].reason, gone["ServiceChainsReconciled"].message) == (
        "AwaitingDeletion",
        "waiting for 1 ServiceChain(s) to be released",
    )


def test_status_patch_carries_the_numbers_and_is_none_when_unchanged() -> None:
    current: dict[str, Any] = {"metadata": {"generation": 2}, "status": {}}
    wanted = set_status_patch(INTERFACES, current, SetNumbers(3, 1, ["a", "b"]), deleting=False)
    assert wanted is not None
    assert (wanted["numberApplied"], wanted["numberReady"], wanted["observedGeneration"]) == (3, 1, 2)
    current["status"] = wanted
    assert set_status_patch(INTERFACES, current, SetNumbers(3, 1, ["a", "b"]), deleting=False) is None
    assert set_status_patch(INTERFACES, current, SetNumbers(3, 2, ["a"]), deleting=False) is not None


def test_dpu_cluster_crds_are_the_chaining_kinds_with_status() -> None:
    crds = {c["spec"]["names"]["kind"]: c for c in dpu_cluster_crds()}
    assert sorted(crds) == ["ServiceChain", "ServiceChainSet", "ServiceInterface", "ServiceInterfaceSet"]
    version = crds["ServiceInterfaceSet"]["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"numberApplied", "numberReady", "conditions", "observedGeneration"} <= set(status)
