"""The host role's DPU ownership reconciler and its state files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dpfd.agent.reconciler import LocalStateReconciler, Reconciler
from dpfd.agent.statefile import write_atomic
from dpfd.api.intents import Intent, ObjectRef
from dpfd.host.dpu_intent import DpuIntentStore, DpuOwnershipReconciler, ownership_reconcilers

REF = ObjectRef(kind="DPU", namespace="dpf", name="dpu-1")


def make_intent(generation: int = 1, deleting: bool = False) -> Intent:
    return Intent(node="host-1", ref=REF, uid="u1", generation=generation, spec={"sn": "X"}, deleting=deleting)


async def test_accepts_intent_and_persists_it(tmp_path: Path) -> None:
    rec = DpuOwnershipReconciler("host-1", tmp_path)
    assert isinstance(rec, Reconciler) and isinstance(rec, LocalStateReconciler)
    report = await rec.reconcile(REF, make_intent(generation=4))
    assert report is not None
    assert (report.node, report.ref, report.uid, report.observedGeneration) == ("host-1", REF, "u1", 4)
    assert report.phase == "Initializing"
    [c] = report.conditions
    assert (c.type, c.status, c.reason, c.observedGeneration) == (
        "Initialized",
        "True",
        "HostAgentAccepted",
        4,
    )
    assert c.message == "dpfd on host-1 owns this DPU"
    path = tmp_path / "intents" / "DPU" / "dpf" / "dpu-1.json"
    assert Intent.model_validate(json.loads(path.read_text())) == make_intent(generation=4)
    assert rec.local_refs() == [REF]
    assert [p.name for p in path.parent.iterdir()] == ["dpu-1.json"]  # no temp file left


async def test_deleting_releases_state(tmp_path: Path) -> None:
    rec = DpuOwnershipReconciler("host-1", tmp_path)
    await rec.reconcile(REF, make_intent())
    report = await rec.reconcile(REF, make_intent(generation=2, deleting=True))
    assert report is not None
    assert report.phase == "Deleting" and report.details == {"released": True} and report.observedGeneration == 2
    assert rec.local_refs() == []


async def test_gone_intent_removes_state_and_reports_nothing(tmp_path: Path) -> None:
    rec = DpuOwnershipReconciler("host-1", tmp_path)
    await rec.reconcile(REF, make_intent())
    assert await rec.reconcile(REF, None) is None
    assert rec.local_refs() == []
    assert await rec.reconcile(REF, None) is None  # idempotent


def test_save_skips_identical_content(tmp_path: Path) -> None:
    store = DpuIntentStore(tmp_path)
    assert store.save(make_intent()) is True
    assert store.save(make_intent()) is False
    assert store.save(make_intent(generation=2)) is True
    assert store.load(REF) == make_intent(generation=2)


def test_write_atomic_keeps_old_content_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "a" / "state.json"
    write_atomic(path, b'{"v": 1}')
    # Occupy the temp file's name with a directory so the new write fails before the rename.
    blocker = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    blocker.mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(path, b'{"v": 2}')
    assert json.loads(path.read_text()) == {"v": 1}


def test_host_role_reconcilers(tmp_path: Path) -> None:
    [rec] = ownership_reconcilers("host-1", tmp_path)
    assert rec.kind == "DPU"
