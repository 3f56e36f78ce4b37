"""dpfd's `dataplane:` section: DPF's defaults on a real DPU, dpf-sim's settings, and precise errors."""

from __future__ import annotations

import pytest

from dpfd.config import ConfigError, parse_config
from dpfd.dpu.ovs.ports import PortSettings

BASE = "node: dpu-1\nrole: dpu\netcd: {endpoints: [http://etcd-1:2379]}\n"


def test_defaults_suit_a_real_dpu() -> None:
    d = parse_config(BASE).dataplane
    assert d.ovsdb == "unix:/var/run/openvswitch/db.sock"
    assert d.port_settings() == PortSettings(bridge="br-sfc", ovn_bridge="br-ovn", port_type="dpdk")
    assert d.ofctl == ["ovs-ofctl", "-O", "OpenFlow14"] and d.ofctl_bridge() == "br-sfc"


def test_a_sim_dpu_section() -> None:
    d = parse_config(
        BASE
        + """dataplane:
  ovsdb: unix:/tmp/sim/dpu-1/ovs/db.sock
  portType: internal
  applyTimeout: 3
  ofctl: [ovs-ofctl, -O, OpenFlow14, --strict]
  ofctlTarget: unix:/tmp/sim/dpu-1/ovs/br-sfc.mgmt
"""
    ).dataplane
    assert d.port_settings().port_type == "internal" and d.apply_timeout == 3
    assert d.ofctl_bridge() == "unix:/tmp/sim/dpu-1/ovs/br-sfc.mgmt"


@pytest.mark.parametrize(
    ("section", "error"),
    [
        (
            "ovsdb: /var/run/openvswitch/db.sock",
            "field 'dataplane.ovsdb': Value error, ovsdb '/var/run/openvswitch/db.sock' must be an OVSDB remote",
        ),
        ("bridge: br-sfc-much-too-long", "field 'dataplane.bridge': String should match pattern"),
        ("portType: ''", "field 'dataplane.portType': String should have at least 1 character"),
        ("ofctl: []", "field 'dataplane.ofctl': List should have at least 1 item"),
        ("bridges: br-sfc", "field 'dataplane.bridges': unknown field"),
    ],
)
def test_errors_name_the_field(section: str, error: str) -> None:
    with pytest.raises(ConfigError, match="^<config>: " + error.replace("(", r"\(").replace(".", r"\.")):
        parse_config(BASE + "dataplane:\n  " + section + "\n")
