"""The host's operator requests on disk (retry, reflash, drain) and the admin operations that make them: what is
refused and why, and what the DPU listing reads from progress, intents and reports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpfd.admin.dpus import DpuDirectory
from dpfd.admin.errors import InvalidArgument, NotFound, Precondition
from dpfd.admin.events import AdminEvent
from dpfd.admin.fanout import Fanout
from dpfd.admin.operations import HostOperations
from dpfd.agent.intent_view import IntentEntry
from dpfd.api.intents import Intent, ObjectRef
from dpfd.host.provisioning.progress import PhaseEntry, Progress, ProgressStore, StepError
from dpfd.host.provisioning.requests import OperatorRequests

NODE = "worker-1"


def ref(name: str, namespace: str = "dpf-operator-system") -> ObjectRef:
    return ObjectRef(kind="DPU", namespace=namespace, name=name)


class Node:
    """The node agent's side, as the admin API reads it: intents and reports; kicks are recorded."""

    def __init__(self) -> None:
        self.entries: list[IntentEntry] = []
        self.reports: dict[ObjectRef, dict[str, Any]] = {}
        self.kicked: list[ObjectRef] = []

    def add(self, r: ObjectRef, deleting: bool = False, **report: Any) -> None:
        intent = Intent(node=NODE, ref=r, uid=f"uid-{r.name}", generation=2, deleting=deleting,
                        spec={"pciAddress": "0000-03-00", "bfb": "bf-bundle"})  # fmt: skip
        self.entries.append(IntentEntry(r, 1, intent, "", 2))
        if report:
            self.reports[r] = report

    def intents(self) -> list[IntentEntry]:
        return self.entries

    def report(self, r: ObjectRef) -> dict[str, Any] | None:
        return self.reports.get(r)


@pytest.fixture
def node() -> Node:
    return Node()


def operations(tmp_path: Path, node: Node) -> tuple[HostOperations, Fanout[AdminEvent]]:
    events: Fanout[AdminEvent] = Fanout()
    directory = DpuDirectory(NODE, tmp_path, node)
    return HostOperations(NODE, directory, OperatorRequests(tmp_path), node.kicked.append, events), events


def test_progress_written_before_phases_had_times_still_loads(tmp_path: Path) -> None:
    store = ProgressStore(tmp_path)
    path = store.path(ref("d"))
    path.parent.mkdir(parents=True)
    path.write_text('{"uid": "u", "phase": "Pending", "history": ["Initializing", "Node Effect", "Pending"]}')
    p = store.load(ref("d"))
    assert p is not None and [(h.phase, h.at) for h in p.history] == [("Initializing", 0.0), ("Node Effect", 0.0),
                                                                       ("Pending", 0.0)]  # fmt: skip
    assert p.enter("DMS Deployment", at=12.5) and p.history[-1] == PhaseEntry(phase="DMS Deployment", at=12.5)
    assert not p.enter("DMS Deployment")  # no change, no entry
    for i in range(40):
        p.enter(f"phase {i}")
    assert len(p.history) == 32 and p.history[-1].phase == "phase 39"


def test_requests_survive_in_files(tmp_path: Path) -> None:
    requests = OperatorRequests(tmp_path)
    first = requests.request(ref("d"), "retry", at=1.0)
    second = requests.request(ref("d"), "reflash", at=2.0)
    again = OperatorRequests(tmp_path).dpu(ref("d"))  # another process reading them
    assert (again.retry, again.retry_at, again.reflash, again.reflash_at) == (first, 1.0, second, 2.0)
    assert requests.request(ref("d"), "retry") not in (first, second)
    requests.forget(ref("d"))
    assert OperatorRequests(tmp_path).dpu(ref("d")).retry == ""

    assert requests.drain_state() is None and not requests.undrain()
    assert requests.drain("first", at=5.0).reason == "first"
    assert OperatorRequests(tmp_path).drain("second").reason == "first"  # draining again keeps the first
    assert requests.undrain() and requests.drain_state() is None


def test_retry_needs_a_failure_and_reflash_a_live_intent(tmp_path: Path, node: Node) -> None:
    ops, events = operations(tmp_path, node)
    node.add(ref("ready"), phase="Ready")
    node.add(ref("going"), deleting=True, phase="Deleting")
    failing = ref("failing")
    node.add(failing, phase="Error")
    progress = Progress(uid="uid-failing", phase="Error", attempts=3,
                        error=StepError(phase="OS Installing", reason="DMSInstallError", message="x", at=1.0))  # fmt: skip
    ProgressStore(tmp_path).save(failing, progress)
    ProgressStore(tmp_path).save(ref("released"), Progress(uid="gone"))  # local progress only: being released

    with pytest.raises(Precondition, match="DPU ready has no failure to retry \\(phase Ready\\)"):
        ops.retry("ready")
    with pytest.raises(Precondition, match="DPU going is being deleted"):
        ops.reflash("going")
    with pytest.raises(Precondition, match="DPU released is being released"):
        ops.reflash("released")
    with pytest.raises(NotFound, match="DPU nope is not provisioned by host worker-1"):
        ops.retry("nope")
    assert node.kicked == []

    done = ops.retry("failing")
    assert done.message == "DPU failing: retrying OS Installing now" and node.kicked == [failing]
    assert OperatorRequests(tmp_path).dpu(failing).retry == done.request_id
    [event] = events.recent()
    assert (event.type, event.name, event.fields) == ("request", "failing", {"action": "retry",
                                                                             "request": done.request_id})  # fmt: skip


def test_a_name_in_two_namespaces_needs_one(tmp_path: Path, node: Node) -> None:
    ops, _ = operations(tmp_path, node)
    node.add(ref("d", "a"), phase="Ready")
    node.add(ref("d", "b"), phase="Ready")
    with pytest.raises(InvalidArgument, match="several namespaces \\(a, b\\)"):
        ops.reflash("d")
    assert ops.reflash("d", "b").dpu.namespace == "b"


def test_drain_counts_the_dpus_still_working_and_kicks_them(tmp_path: Path, node: Node) -> None:
    ops, events = operations(tmp_path, node)
    node.add(ref("ready"), phase="Ready")
    node.add(ref("busy"), phase="OS Installing")
    node.add(ref("held"), phase="Pending", details={"drained": True})
    status = ops.drain("maintenance")
    assert (status.draining, status.reason, status.in_flight) == (True, "maintenance", 1)
    assert sorted(r.name for r in node.kicked) == ["busy", "held", "ready"]
    node.reports[ref("busy")] = {"phase": "DMS Deployment", "details": {"drained": True}}
    assert ops.drain_status().in_flight == 0
    assert not ops.undrain().draining and not ops.undrain().draining
    assert [e.message for e in events.recent() if e.type == "drain"] == [
        "host worker-1 drained: maintenance",
        "host worker-1 undrained",
    ]
