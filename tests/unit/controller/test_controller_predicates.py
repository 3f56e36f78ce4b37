"""Which DPU updates can change its intent: a status-only write (the controller's own report write-back) cannot."""

from __future__ import annotations

import copy
from typing import Any

from controller.reconcilers.provisioning import status_only_change

DPU: dict[str, Any] = {
    "apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
    "kind": "DPU",
    "metadata": {"name": "w1-0000-03-00", "namespace": "ns", "uid": "u1", "generation": 2, "resourceVersion": "10",
                 "labels": {"a": "b"}, "finalizers": ["provisioning.dpu.nvidia.com/dpu-protection"]},
    "spec": {"nodeName": "w1", "bfb": "bf-bundle", "cluster": {"nodeLabels": {"x": "1"}}},
    "status": {"phase": "Initializing"},
}  # fmt: skip


def changed(**edits: Any) -> dict[str, Any]:
    new = copy.deepcopy(DPU)
    for path, value in edits.items():
        *parents, leaf = path.split("__")
        node = new
        for p in parents:
            node = node[p]
        node[leaf] = value
    return new


def test_status_and_bookkeeping_only_is_status_only() -> None:
    new = changed(status={"phase": "Ready"}, metadata__resourceVersion="11", metadata__managedFields=[{"m": 1}])
    assert status_only_change(DPU, new)


def test_anything_an_intent_is_made_of_is_not_status_only() -> None:
    assert not status_only_change(None, DPU)
    assert not status_only_change(DPU, changed(spec__cluster={"nodeLabels": {"x": "2"}}))
    assert not status_only_change(DPU, changed(metadata__labels={"a": "c"}))
    assert not status_only_change(DPU, changed(metadata__generation=3))
    assert not status_only_change(DPU, changed(metadata__finalizers=[]))
    assert not status_only_change(DPU, changed(metadata__deletionTimestamp="2026-11-28T00:00:00Z"))
    assert not status_only_change(DPU, changed(metadata__annotations={"k": "v"}))
