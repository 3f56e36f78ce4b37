"""How a generated object is written over an existing one, and how consumed objects are marked."""

from __future__ import annotations

from typing import Any

from controller.dpudeployment.apply import merge_diff, update_patch
from controller.dpudeployment.dependencies import mark_patch
from controller.kube.resources import DPUSETS
from dpfd.api.defaults import apply_defaults

OWNER = "svc.dpu.nvidia.com/owned-by-dpudeployment"
REF = {"apiVersion": "svc.dpu.nvidia.com/v1alpha1", "kind": "DPUDeployment", "name": "dd", "uid": "u1",
       "controller": True, "blockOwnerDeletion": True}  # fmt: skip


def dpuset(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": DPUSETS.api_version,
        "kind": "DPUSet",
        "metadata": {"name": "dd-a", "namespace": "ns", **meta},
        "spec": spec,
    }


def wanted(labels: dict[str, str]) -> dict[str, Any]:
    spec = {
        "strategy": {"type": "RollingUpdate"},
        "dpuTemplate": {"spec": {"bfb": {"name": "b"}, "dpuFlavor": "f", "cluster": {"nodeLabels": labels}}},
    }
    return dpuset(spec, labels={OWNER: "ns_dd"}, ownerReferences=[REF])


def stored(labels: dict[str, str]) -> dict[str, Any]:
    """As the API server keeps `wanted(labels)`: with its defaults."""
    return apply_defaults(wanted(labels))


def test_merge_diff_nulls_what_is_gone_and_keeps_the_rest() -> None:
    assert merge_diff({"a": 1, "b": {"c": 1, "d": 2}, "l": [1]}, {"b": {"c": 1}, "l": [2], "e": 3}) == {
        "a": None,
        "b": {"d": None},
        "l": [2],
        "e": 3,
    }


def test_an_object_as_generated_after_defaults_needs_no_write() -> None:
    current = stored({"v": "1"})
    assert current["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 1}  # the webhook's default
    assert update_patch(current, wanted({"v": "1"})) is None


def test_a_removed_label_is_nulled_and_ownership_taken() -> None:
    current = stored({"v": "1", "old": "x"})
    current["metadata"] = {"name": "dd-a", "namespace": "ns", "labels": {"other": "y"},
                           "ownerReferences": [{**REF, "uid": "someone-else"}]}  # fmt: skip
    patch = update_patch(current, wanted({"v": "2"}))
    assert patch is not None
    assert patch["spec"]["dpuTemplate"]["spec"]["cluster"]["nodeLabels"] == {"v": "2", "old": None}
    assert patch["metadata"] == {"labels": {OWNER: "ns_dd"}, "ownerReferences": [REF]}


def test_mark_and_release_a_dependency() -> None:
    obj = {"metadata": {"name": "f", "namespace": "ns", "resourceVersion": "7", "finalizers": ["other/x"]}}
    patch = mark_patch(obj, ["dd"])
    assert patch == {"metadata": {"labels": {"dpu.nvidia.com/consumed-by-dpudeployment-name": "dd"},
                                  "finalizers": ["other/x", "dpu.nvidia.com/dpudeployment"],
                                  "resourceVersion": "7"}}  # fmt: skip
    marked = {"metadata": {**obj["metadata"], **patch["metadata"]}}
    assert mark_patch(marked, ["dd"]) is None
    released = mark_patch(marked, [])
    assert released is not None
    assert released["metadata"]["labels"] == {"dpu.nvidia.com/consumed-by-dpudeployment-name": None}
    assert released["metadata"]["finalizers"] == ["other/x"]
    # Another DPUDeployment still using it keeps it held.
    assert mark_patch(marked, ["aa", "dd"])["metadata"]["labels"] == {  # type: ignore[index]
        "dpu.nvidia.com/consumed-by-dpudeployment-name": "aa"
    }
