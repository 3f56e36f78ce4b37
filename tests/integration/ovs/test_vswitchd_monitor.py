"""VswitchdMonitor notices ovs-vswitchd restarts (SIGTERM and SIGKILL) through OVSDB, and the callback can
restore OpenFlow rules at once."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest

from dpfd.dpu.ovs.connection import OvsdbConnection
from dpfd.dpu.ovs.monitor import CANARY, VswitchdMonitor
from dpfd.dpu.ovs.ports import PortSettings
from dpfd.dpu.ovs.reconciler import ServiceInterfaceReconciler
from tests.ovs_fixture import PrivateOvs
from tests.waiting import eventually


@pytest.fixture
async def conn(ovs: PrivateOvs) -> AsyncIterator[OvsdbConnection]:
    ovs.add_bridge("br-sfc")
    c = OvsdbConnection(ovs.db, timeout=5)
    await c.start()
    yield c
    await c.stop()


class Restorer:
    """The callback: re-installs a flow the way the flow reconciler would, and counts calls."""

    def __init__(self, ovs: PrivateOvs) -> None:
        self.ovs = ovs
        self.calls = 0

    async def __call__(self) -> None:
        self.calls += 1
        await asyncio.to_thread(self.ovs.ofctl, "add-flow", "br-sfc", "cookie=0x42,priority=20,actions=drop")


def has_flow(ovs: PrivateOvs) -> bool:
    return "cookie=0x42" in ovs.ofctl("dump-flows", "br-sfc")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
async def test_restart_is_noticed_and_flows_restored(ovs: PrivateOvs, conn: OvsdbConnection, sig: int) -> None:
    restorer = Restorer(ovs)
    mon = VswitchdMonitor(conn, "br-sfc", restorer)
    await mon.start()
    try:
        assert sorted(ovs.vsctl("list-ports", "br-sfc").split()) == list(CANARY)
        assert ovs.vsctl("get", "Port", CANARY[0], "external_ids:dpf-type").strip().strip('"') == "monitor"
        assert mon.mac and restorer.calls == 0  # starting against a running vswitchd is no restart
        # Ordinary reconfiguration (ports added, other config) is no restart either.
        ovs.vsctl("add-port", "br-sfc", "x0", "--", "set", "Interface", "x0", "type=internal")
        ovs.vsctl("set", "Open_vSwitch", ".", "other_config:max-idle=20000")
        await asyncio.to_thread(ovs.restart_vswitchd, sig)
        await eventually(lambda: restorer.calls == 1, 5, "the restart callback")
        await eventually(lambda: has_flow(ovs), 5, "the flow restored by the callback")
        assert mon.restarts == 1
        await asyncio.to_thread(ovs.restart_vswitchd, sig)
        await eventually(lambda: restorer.calls == 2, 5, "the second restart callback")
        assert mon.restarts == 2
    finally:
        await mon.stop()


async def test_monitor_started_while_vswitchd_is_down(ovs: PrivateOvs, conn: OvsdbConnection) -> None:
    ovs.stop_vswitchd()
    restorer = Restorer(ovs)
    mon = VswitchdMonitor(conn, "br-sfc", restorer, apply_timeout=0.3)
    await mon.start()
    try:
        assert mon.mac == "" and restorer.calls == 0
        await asyncio.to_thread(ovs.start_vswitchd)
        await eventually(lambda: restorer.calls == 1, 5, "the start callback")
        await eventually(lambda: has_flow(ovs), 5, "the flow")
    finally:
        await mon.stop()


async def test_removed_canary_is_made_again_and_resyncs(ovs: PrivateOvs, conn: OvsdbConnection) -> None:
    restorer = Restorer(ovs)
    mon = VswitchdMonitor(conn, "br-sfc", restorer)
    await mon.start()
    try:
        ovs.vsctl("del-port", "br-sfc", CANARY[0])
        await eventually(lambda: restorer.calls >= 1, 5, "the callback")
        await eventually(lambda: CANARY[0] in ovs.vsctl("list-ports", "br-sfc").split(), 5, "the canary again")
    finally:
        await mon.stop()


async def test_canary_is_not_a_service_interface(ovs: PrivateOvs, conn: OvsdbConnection) -> None:
    mon = VswitchdMonitor(conn, "br-sfc", Restorer(ovs))
    await mon.start()
    try:
        rec = ServiceInterfaceReconciler(conn, "dpu-1", PortSettings(port_type="internal"))
        assert list(rec.local_refs()) == []
    finally:
        await mon.stop()
