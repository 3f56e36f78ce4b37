"""Stale ports on br-sfc are removed as DPF's stale.go does, once the intents are listed and reconciled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from dpfd.api.intents import Intent, ObjectRef
from dpfd.dpu.ovs.connection import OvsdbConnection
from dpfd.dpu.ovs.ports import PortSettings
from dpfd.dpu.ovs.reconciler import ServiceInterfaceReconciler
from dpfd.dpu.ovs.stale import Declared, port_is_kept
from tests.ovs_fixture import PrivateOvs

NS = "dpf-operator-system"
BR = "br-sfc"


@pytest.fixture
async def conn(ovs: PrivateOvs) -> AsyncIterator[OvsdbConnection]:
    ovs.add_bridge(BR)
    ovs.add_bridge("br-ovn", fail_mode="standalone")
    c = OvsdbConnection(ovs.db, timeout=5)
    await c.start()
    yield c
    await c.stop()


@pytest.fixture
def rec(conn: OvsdbConnection) -> ServiceInterfaceReconciler:
    return ServiceInterfaceReconciler(conn, "dpu-1", PortSettings(port_type="internal"), apply_timeout=3)


def si(name: str, spec: dict[str, Any]) -> Intent:
    return Intent(node="dpu-1", ref=ObjectRef(kind="ServiceInterface", namespace=NS, name=name), generation=1,
                  spec=spec)  # fmt: skip


def add_port(ovs: PrivateOvs, bridge: str, name: str, *settings: str) -> None:
    ovs.vsctl("add-port", bridge, name, "--", "set", "Interface", name, "type=internal", *settings)


def ports(ovs: PrivateOvs, bridge: str = BR) -> set[str]:
    return set(ovs.vsctl("list-ports", bridge).split())


async def test_undeclared_ports_go_and_everything_declared_stays(
    ovs: PrivateOvs, rec: ServiceInterfaceReconciler
) -> None:
    pf0 = si("pf0-dpu-1", {"interfaceType": "pf", "pf": {"pfID": 0}})
    ovn = si("ovn-dpu-1", {"interfaceType": "ovn"})
    svc = si("svc-dpu-1", {"interfaceType": "service", "service": {"serviceID": "fw", "network": "mybrsfc",
                                                                     "interfaceName": "net1"}})  # fmt: skip
    pf1 = si("pf1-dpu-1", {"interfaceType": "pf", "pf": {"pfID": 1}})
    for it in (pf0, ovn, svc):
        report = await rec.reconcile(it.ref, it)
        assert report is not None and report.phase == "Ready", report
    add_port(ovs, BR, "p0")
    ovs.vsctl("set", "Port", "p0", "external_ids:dpf-type=physical")  # the flavor's uplink
    add_port(ovs, BR, "dpfmon9")
    ovs.vsctl("set", "Port", "dpfmon9", "external_ids:dpf-type=monitor")  # dpfd's vswitchd canary
    add_port(ovs, BR, "veth0a1b", "external_ids:dpf-id=apps/web-0/net1", "external_ids:dpf-cni=c0ffee/net1")
    add_port(ovs, BR, "pf1hpf")  # made before its (listed, not yet reconciled) ServiceInterface adopts it
    add_port(ovs, BR, "leftover")  # nobody's
    add_port(ovs, BR, "pf7hpf", f"external_ids:dpf-id={NS}/deleted-dpu-1")  # a ServiceInterface gone meanwhile
    add_port(ovs, BR, "cnilike", "external_ids:dpf-id=apps/web-1/net1")  # a 3-part dpf-id without dpf-cni
    add_port(ovs, "br-ovn", "other")  # another bridge: not br-sfc's business
    refs = [pf0.ref, ovn.ref, svc.ref, pf1.ref]

    collecting = asyncio.create_task(rec.collect_stale_ports(refs, within=10))
    await rec.reconcile(svc.ref, svc)  # intents reconciled again meanwhile: still waiting for pf1
    assert not collecting.done()
    assert "leftover" in ports(ovs)
    report = await rec.reconcile(pf1.ref, pf1)  # not dpf's port: it reports the conflict, but declares the name
    assert report is not None and report.conditions[0].reason == "PortConflict", report
    removed = await collecting

    assert sorted(removed) == ["cnilike", "leftover", "pf7hpf"]
    assert ports(ovs) == {"pf0hpf", "puplinkbrsfc", "p0", "dpfmon9", "veth0a1b", "pf1hpf"}
    assert ports(ovs, "br-ovn") == {"puplinkbrovn", "other"}
    assert await rec.collect_stale_ports(refs) == []  # nothing left to remove


async def test_nothing_is_removed_before_every_listed_intent_was_reconciled(
    ovs: PrivateOvs, rec: ServiceInterfaceReconciler
) -> None:
    add_port(ovs, BR, "pf2hpf")
    never = si("pf2-dpu-1", {"interfaceType": "pf", "pf": {"pfID": 2}})
    with pytest.raises(TimeoutError):
        await rec.collect_stale_ports([never.ref], within=0.2)
    assert ports(ovs) == {"pf2hpf"}
    assert await rec.collect_stale_ports([]) == ["pf2hpf"]  # no intents at all: it is stale


def test_kept_ports() -> None:
    d = Declared(owners=frozenset({"ns/a"}), names=frozenset({"pf0hpf"}))
    assert port_is_kept(BR, BR, {}, [{}], d)
    assert port_is_kept(BR, "pf0hpf", {}, [{}], d)
    assert port_is_kept(BR, "x", {}, [{"dpf-id": "ns/a"}], d)
    assert port_is_kept(BR, "x", {"dpf-type": "physical"}, [{}], d)
    assert port_is_kept(BR, "x", {"dpf-type": "monitor"}, [{}], d)
    assert port_is_kept(BR, "x", {}, [{"dpf-cni": "c/eth1"}], d)
    assert not port_is_kept(BR, "x", {"dpf-type": "other"}, [{"dpf-id": "ns/b"}], d)
