"""The dpu role builds its data plane only when `dataplane.enabled`: a DPU without OVS still starts."""

from __future__ import annotations

from pathlib import Path

from dpfd.config import parse_config
from dpfd.daemon import dataplane_for, reconcilers_for

BASE = "node: dpu-a\nrole: dpu\netcd: {endpoints: ['http://127.0.0.1:2379']}\n"


def test_no_dataplane_unless_enabled() -> None:
    cfg = parse_config(BASE)
    assert cfg.dataplane.enabled is False
    assert dataplane_for(cfg) is None and reconcilers_for(cfg, None) == []
    host = parse_config(BASE.replace("role: dpu", "role: host") + "dataplane: {enabled: true}\n")
    assert dataplane_for(host) is None  # the host role has no data plane of its own


def test_enabled_dataplane_handles_interfaces_and_chains() -> None:
    cfg = parse_config(BASE + "runtimeDir: /run/x\ndataplane: {enabled: true}\n")
    dp = dataplane_for(cfg)
    assert dp is not None
    assert [r.kind for r in reconcilers_for(cfg, dp)] == ["ServiceInterface", "ServiceChain"]
    assert dp.cni_socket == Path("/run/x/sfc-cni.sock")
    assert dp.chains.flows.ofctl.argv == ("ovs-ofctl",)  # the config's -O OpenFlow14 is not given twice
    assert dp.chains.flows.ofctl.target == "br-sfc"
