"""The DPU reachability conditions from a gossip view: which member speaks for a DPU, what each state becomes,
and how they merge with the report's conditions."""

from __future__ import annotations

from typing import Any

import pytest

from controller.kube.objects import Obj, name_of
from controller.reachability import (
    DPU_DAEMON_REACHABLE,
    HOST_DAEMON_REACHABLE,
    NAME_INDEX,
    NODE_INDEX,
    MemberLedger,
    affected_dpus,
    merge_conditions,
    reachability_conditions,
)
from dpfd.api.conditions import Condition
from dpfd.gossip.meta import MemberMeta, pci_slot
from dpfd.gossip.view import MemberChange, MemberInfo


def member(name: str, role: str, state: str = "alive", *, node: str = "", host: str = "", pci: str = "") -> MemberInfo:
    meta = MemberMeta(role=role, node=node or name, version="0.1.0", started=0.0, host=host, pci=pci)
    return MemberInfo(name, f"10.0.0.1:{7946 + len(name)}", state, 1, meta)


def dpu_obj(name: str = "worker-1-0000-03-00", node: str = "worker-1", pci: str = "0000-03-00", **status: Any) -> Obj:
    return {
        "metadata": {"name": name, "namespace": "dpf"},
        "spec": {"nodeName": node, "pciAddress": pci},
        "status": status,
    }


def by_type(conds: list[Condition]) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in conds}


@pytest.mark.parametrize(
    ("address", "key"),
    [("0000-03-00", "0000:03:00"), ("0000:03:00.0", "0000:03:00"), ("0000:0A:00.1", "0000:0a:00"), ("", "")],
)
def test_pci_slot(address: str, key: str) -> None:
    assert pci_slot(address) == key


def test_states_become_conditions() -> None:
    ledger = MemberLedger()
    ledger.on_change(MemberChange.JOINED, member("worker-1", "host"))
    ledger.on_change(MemberChange.JOINED, member("worker-1-0000-03-00", "dpu", host="worker-1", pci="0000:03:00.0"))
    assert by_type(reachability_conditions(ledger, dpu_obj())) == {
        DPU_DAEMON_REACHABLE: ("True", "MemberAlive"),
        HOST_DAEMON_REACHABLE: ("True", "MemberAlive"),
    }
    ledger.on_change(
        MemberChange.FAILED, member("worker-1-0000-03-00", "dpu", "dead", host="worker-1", pci="0000:03:00.0")
    )
    ledger.on_change(MemberChange.LEFT, member("worker-1", "host", "left"))
    conds = reachability_conditions(ledger, dpu_obj())
    assert by_type(conds) == {
        DPU_DAEMON_REACHABLE: ("False", "MemberFailed"),
        HOST_DAEMON_REACHABLE: ("False", "MemberLeft"),
    }
    assert "worker-1-0000-03-00" in conds[0].message and "declared dead" in conds[0].message


def test_suspect_is_still_reachable() -> None:
    ledger = MemberLedger()
    ledger.on_change(MemberChange.UPDATED, member("worker-1", "host", "suspect"))
    assert by_type(reachability_conditions(ledger, dpu_obj())) == {HOST_DAEMON_REACHABLE: ("True", "MemberAlive")}


def test_a_dpu_daemon_found_by_host_and_pci_when_its_name_differs() -> None:
    ledger = MemberLedger()
    ledger.on_change(MemberChange.JOINED, member("bf-17", "dpu", "dead", host="worker-1", pci="0000:03:00.0"))
    ledger.on_change(MemberChange.JOINED, member("bf-18", "dpu", host="worker-1", pci="0000:04:00.0"))
    assert by_type(reachability_conditions(ledger, dpu_obj())) == {DPU_DAEMON_REACHABLE: ("False", "MemberFailed")}
    assert by_type(reachability_conditions(ledger, dpu_obj(name="other", pci="0000-04-00"))) == {
        DPU_DAEMON_REACHABLE: ("True", "MemberAlive")
    }
    assert reachability_conditions(ledger, dpu_obj(name="other", pci="0000-05-00")) == []


def test_unknown_daemons_keep_the_condition_the_dpu_has() -> None:
    earlier = Condition(type=DPU_DAEMON_REACHABLE, status="False", reason="MemberFailed", message="seen before")
    dpu = dpu_obj(conditions=[earlier.model_dump(mode="json"), {"type": "Ready", "status": "True"}])
    assert reachability_conditions(MemberLedger(), dpu) == [earlier]
    assert reachability_conditions(MemberLedger(), dpu_obj()) == []


def test_the_ledger_ignores_controllers_and_undecodable_members_and_tells_handlers_of_dpfds() -> None:
    ledger = MemberLedger()
    seen: list[str] = []
    ledger.add_handler(lambda info: seen.append(info.name))
    ledger.on_change(MemberChange.JOINED, member("c1", "controller", node="worker-1"))
    ledger.on_change(MemberChange.JOINED, MemberInfo("odd", "10.0.0.9:7946", "alive", 1, None))
    ledger.on_change(MemberChange.JOINED, member("worker-1", "host"))
    assert seen == ["worker-1"]
    host = ledger.host("worker-1")
    assert host is not None and host.role == "host"


def test_affected_dpus() -> None:
    a = dpu_obj("worker-1-0000-03-00", pci="0000-03-00")
    b = dpu_obj("worker-1-0000-04-00", pci="0000-04-00")
    index = {NODE_INDEX: {"worker-1": [a, b]}, NAME_INDEX: {name_of(a): [a], name_of(b): [b]}}

    def by_index(name: str, value: str) -> list[Obj]:
        return index[name].get(value, [])

    names = lambda dpus: sorted(name_of(d) for d in dpus)  # noqa: E731
    assert names(affected_dpus(member("worker-1", "host"), by_index)) == [name_of(a), name_of(b)]
    assert names(affected_dpus(member("worker-1-0000-04-00", "dpu"), by_index)) == [name_of(b)]
    assert names(affected_dpus(member("bf-3", "dpu", host="worker-1", pci="0000:03:00.0"), by_index)) == [name_of(a)]
    assert affected_dpus(MemberInfo("odd", "x", "alive", 1, None), by_index) == []


def test_merge_keeps_report_conditions_and_transition_times() -> None:
    report = [{"type": "Initialized", "status": "True"}, {"type": DPU_DAEMON_REACHABLE, "status": "Unknown"}]
    current = [{"type": DPU_DAEMON_REACHABLE, "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]
    own = [
        Condition(type=DPU_DAEMON_REACHABLE, status="True", reason="MemberAlive"),
        Condition(type=HOST_DAEMON_REACHABLE, status="False", reason="MemberFailed"),
    ]
    merged = merge_conditions(report, own, current)
    assert [c["type"] for c in merged] == ["Initialized", DPU_DAEMON_REACHABLE, HOST_DAEMON_REACHABLE]  # type: ignore[index]
    assert merged[1]["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # type: ignore[index]
    assert merge_conditions(merged, own, merged) == merged  # stable: a second write changes nothing
