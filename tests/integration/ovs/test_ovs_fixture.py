"""The private OVS fixture: both daemons run, a netdev bridge takes ports and flows, restart and stop work."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from tests.ovs_fixture import OvsError, PrivateOvs, missing_ovs


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_bridge_ports_and_flows(ovs: PrivateOvs) -> None:
    ovs.add_bridge("br-sfc")
    ovs.vsctl("add-port", "br-sfc", "int0", "--", "set", "Interface", "int0", "type=internal")
    assert ovs.vsctl("list-ports", "br-sfc").split() == ["int0"]
    assert int(ovs.vsctl("get", "Interface", "int0", "ofport").strip()) > 0
    ovs.ofctl("add-flow", "br-sfc", "cookie=0x7,table=0,priority=20,in_port=int0,actions=drop")
    assert "cookie=0x7" in ovs.ofctl("dump-flows", "br-sfc")
    assert "int0" in ovs.appctl("dpif/show")
    # The userspace datapath's taps live in the fixture's netns, not the host's.
    assert ovs.netns is not None
    links = subprocess.run(["ip", "-n", ovs.netns, "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert "int0" in links and "br-sfc" in links


def test_restart_vswitchd_loses_flows_keeps_config(ovs: PrivateOvs) -> None:
    ovs.add_bridge("br-sfc")
    ovs.ofctl("add-flow", "br-sfc", "cookie=0x9,actions=drop")
    before = ovs.pid("ovs-vswitchd")
    ovs.restart_vswitchd(signal.SIGKILL)
    after = ovs.pid("ovs-vswitchd")
    assert before is not None and after is not None and before != after
    assert not _alive(before)
    assert ovs.vsctl("list-br").split() == ["br-sfc"]
    assert "cookie=0x9" not in ovs.ofctl("dump-flows", "br-sfc")
    assert ovs.vswitchd_starts == 2


def test_stop_kills_daemons_and_removes_everything() -> None:
    if why := missing_ovs():
        pytest.skip(why)
    o = PrivateOvs().start()
    pids = [o.pid("ovsdb-server"), o.pid("ovs-vswitchd")]
    assert all(pids)
    o.stop()
    assert not any(_alive(p) for p in pids if p)
    assert not o.rundir.exists()
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert o.netns not in netns.split()


def test_command_failure_is_clear(ovs: PrivateOvs) -> None:
    with pytest.raises(OvsError, match="no bridge named nope"):
        ovs.vsctl("list-ports", "nope")
