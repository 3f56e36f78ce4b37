"""ServiceInterface intents become DPF's ports on a real (private) Open vSwitch, through ovsdbapp."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from dpfd.api.intents import Intent, ObjectRef
from dpfd.dpu.ovs.connection import OvsdbConnection, OvsdbError
from dpfd.dpu.ovs.ports import PortSettings
from dpfd.dpu.ovs.reconciler import ServiceInterfaceReconciler
from tests.ovs_fixture import PrivateOvs

NS = "dpf-operator-system"


@pytest.fixture
async def conn(ovs: PrivateOvs) -> AsyncIterator[OvsdbConnection]:
    ovs.add_bridge("br-sfc")
    ovs.add_bridge("br-ovn", fail_mode="standalone")
    c = OvsdbConnection(ovs.db, timeout=5)
    await c.start()
    yield c
    await c.stop()


@pytest.fixture
def rec(conn: OvsdbConnection) -> ServiceInterfaceReconciler:
    # No DPDK here: pf/vf/physical ports are internal ports of the userspace datapath.
    return ServiceInterfaceReconciler(conn, "dpu-1", PortSettings(port_type="internal"), apply_timeout=3)


def si(name: str, spec: dict[str, Any], generation: int = 1, deleting: bool = False) -> Intent:
    ref = ObjectRef(kind="ServiceInterface", namespace=NS, name=name)
    return Intent(node="dpu-1", ref=ref, generation=generation, spec=spec, deleting=deleting)


def col(ovs: PrivateOvs, table: str, row: str, column: str) -> str:
    return ovs.vsctl("get", table, row, column).strip().strip('"')


async def test_port_rules_match_dpf(ovs: PrivateOvs, rec: ServiceInterfaceReconciler) -> None:
    cases = {
        "p0-dpu-1": ({"interfaceType": "physical", "physical": {"interfaceName": "p0"}}, ["p0"]),
        "pf0-dpu-1": ({"interfaceType": "pf", "pf": {"pfID": 0}}, ["pf0hpf"]),
        "vf-dpu-1": ({"interfaceType": "vf", "vf": {"pfID": 1, "vfID": 3}}, ["pf1vf3"]),
        "ovn-dpu-1": ({"interfaceType": "ovn"}, ["puplinkbrsfc", "puplinkbrovn"]),
    }
    for name, (spec, ports) in cases.items():
        report = await rec.reconcile(si(name, spec).ref, si(name, spec))
        assert report is not None
        assert (report.phase, report.conditions[0].status) == ("Ready", "True"), report
        assert [p["name"] for p in report.details["ports"]] == ports
        assert all(p["ofport"] > 0 for p in report.details["ports"])
        for port in ports:
            assert col(ovs, "Interface", port, "external_ids:dpf-id") == f"{NS}/{name}"
    assert sorted(ovs.vsctl("list-ports", "br-sfc").split()) == ["p0", "pf0hpf", "pf1vf3", "puplinkbrsfc"]
    assert ovs.vsctl("list-ports", "br-ovn").split() == ["puplinkbrovn"]
    assert col(ovs, "Port", "p0", "external_ids:dpf-type") == "physical"
    assert col(ovs, "Interface", "pf0hpf", "type") == "internal"
    assert col(ovs, "Interface", "puplinkbrsfc", "type") == "patch"
    assert col(ovs, "Interface", "puplinkbrsfc", "options:peer") == "puplinkbrovn"
    assert col(ovs, "Interface", "puplinkbrovn", "options:peer") == "puplinkbrsfc"


async def test_one_transaction_per_reconcile_and_idempotent(ovs: PrivateOvs, rec: ServiceInterfaceReconciler) -> None:
    before = int(col(ovs, "Open_vSwitch", ".", "next_cfg"))
    intent = si("ovn-dpu-1", {"interfaceType": "ovn"})
    await rec.reconcile(intent.ref, intent)
    assert int(col(ovs, "Open_vSwitch", ".", "next_cfg")) == before + 1  # two ports on two bridges, one transaction
    uuid = col(ovs, "Interface", "puplinkbrsfc", "_uuid")
    report = await rec.reconcile(intent.ref, intent)
    assert report is not None and report.phase == "Ready"
    assert int(col(ovs, "Open_vSwitch", ".", "next_cfg")) == before + 1  # nothing to change: no transaction
    assert col(ovs, "Interface", "puplinkbrsfc", "_uuid") == uuid


async def test_spec_change_and_delete_remove_ports(ovs: PrivateOvs, rec: ServiceInterfaceReconciler) -> None:
    intent = si("pf-dpu-1", {"interfaceType": "pf", "pf": {"pfID": 0}})
    await rec.reconcile(intent.ref, intent)
    changed = si("pf-dpu-1", {"interfaceType": "pf", "pf": {"pfID": 1}}, generation=2)
    report = await rec.reconcile(changed.ref, changed)
    assert report is not None and report.observedGeneration == 2
    assert ovs.vsctl("list-ports", "br-sfc").split() == ["pf1hpf"]
    deleting = await rec.reconcile(changed.ref, si("pf-dpu-1", changed.spec, 2, deleting=True))
    assert deleting is not None and deleting.phase == "Deleting"
    assert ovs.vsctl("list-ports", "br-sfc").split() == []
    await rec.reconcile(intent.ref, intent)
    assert await rec.reconcile(intent.ref, None) is None
    assert ovs.vsctl("list-ports", "br-sfc").split() == []


async def test_stale_ports_are_named_and_collected_cni_ports_kept(
    ovs: PrivateOvs, rec: ServiceInterfaceReconciler
) -> None:
    ovs.vsctl("add-port", "br-sfc", "pf7hpf", "--", "set", "Interface", "pf7hpf", "type=internal",
              f"external_ids:dpf-id={NS}/gone-dpu-1")  # fmt: skip
    ovs.vsctl("add-port", "br-sfc", "pod-eth1", "--", "set", "Interface", "pod-eth1", "type=internal",
              "external_ids:dpf-id=default/pod-a/net1")  # fmt: skip
    refs = list(rec.local_refs())
    assert refs == [ObjectRef(kind="ServiceInterface", namespace=NS, name="gone-dpu-1")]
    await rec.reconcile(refs[0], None)
    assert ovs.vsctl("list-ports", "br-sfc").split() == ["pod-eth1"]
    assert list(rec.local_refs()) == []


async def test_service_interface_makes_no_port(ovs: PrivateOvs, rec: ServiceInterfaceReconciler) -> None:
    spec = {"interfaceType": "service", "service": {"serviceID": "fw", "network": "mybrsfc", "interfaceName": "net1"}}
    report = await rec.reconcile(si("svc-dpu-1", spec).ref, si("svc-dpu-1", spec))
    assert report is not None and report.phase == "Ready" and report.conditions[0].reason == "NothingToCreate"
    assert ovs.vsctl("list-ports", "br-sfc").split() == []


async def test_existing_uplink_is_adopted_foreign_port_is_a_conflict(
    ovs: PrivateOvs, rec: ServiceInterfaceReconciler
) -> None:
    ovs.vsctl("add-port", "br-sfc", "p0", "--", "set", "Interface", "p0", "type=internal")  # the flavor script's
    ovs.vsctl("add-port", "br-sfc", "pf0hpf", "--", "set", "Interface", "pf0hpf", "type=internal")
    phys = si("p0-dpu-1", {"interfaceType": "physical", "physical": {"interfaceName": "p0"}})
    report = await rec.reconcile(phys.ref, phys)
    assert report is not None and report.phase == "Ready"
    assert col(ovs, "Interface", "p0", "external_ids:dpf-id") == f"{NS}/p0-dpu-1"
    pf = si("pf0-dpu-1", {"interfaceType": "pf", "pf": {"pfID": 0}})
    report = await rec.reconcile(pf.ref, pf)
    assert report is not None and report.phase == "Failed"
    assert report.conditions[0].reason == "PortConflict"
    assert "pf0hpf exists and was not made by dpf" in report.conditions[0].message


async def test_invalid_spec_and_missing_bridge_are_reported(ovs: PrivateOvs, rec: ServiceInterfaceReconciler) -> None:
    bad = si("bad-dpu-1", {"interfaceType": "pf"})
    report = await rec.reconcile(bad.ref, bad)
    assert report is not None and report.phase == "Failed" and report.conditions[0].reason == "InvalidSpec"
    vlan = si("vlan-dpu-1", {"interfaceType": "vlan", "vlan": {"vlanID": 5, "parentInterfaceRef": "p0"}})
    report = await rec.reconcile(vlan.ref, vlan)
    assert report is not None and report.conditions[0].reason == "Unsupported"
    ovs.vsctl("del-br", "br-ovn")
    ovn = si("ovn-dpu-1", {"interfaceType": "ovn"})
    report = await rec.reconcile(ovn.ref, ovn)
    assert report is not None and "bridge br-ovn does not exist" in report.conditions[0].message
    assert ovs.vsctl("list-ports", "br-sfc").split() == []  # nothing half-made: one transaction


async def test_vswitchd_down_fails_the_reconcile_clearly(ovs: PrivateOvs, rec: ServiceInterfaceReconciler) -> None:
    ovs.stop_vswitchd()
    rec.apply_timeout = 0.5
    intent = si("pf0-dpu-1", {"interfaceType": "pf", "pf": {"pfID": 0}})
    with pytest.raises(OvsdbError, match="has not applied the ports"):
        await rec.reconcile(intent.ref, intent)
