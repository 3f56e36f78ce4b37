"""From manifests to emulated hardware: every dpu-enabled Node becomes a host with the BlueFields its labels
describe (DPF's discovery labels), each with a DMS on a free port, paced so that a flash takes `flash_seconds`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dpfd.sim.ports import free_port
from dpfd.sim.rack import DpuPlan, HostPlan, RackPlan, address_of_dpu

DPU_ENABLED_LABEL = "feature.node.kubernetes.io/dpu-enabled"
_PCI_LABEL = re.compile(r"^feature\.node\.kubernetes\.io/dpu-(\d+)-pci-address$")
_PF0_LABEL = "feature.node.kubernetes.io/dpu-{index}-pf0-name"
_OOB_NETWORK = "198.51.100"  # the documentation range: never the machine's own network

# Of a flash's time, this share is streaming the image; the rest is the DPU's reboot.
_INSTALL_SHARE = 0.8


@dataclass(frozen=True)
class FlashTiming:
    flash_seconds: float
    bfb_bytes: int

    @property
    def install_bytes_per_s(self) -> float:
        return self.bfb_bytes / (self.flash_seconds * _INSTALL_SHARE) if self.flash_seconds > 0 else 0.0

    @property
    def reboot_seconds(self) -> float:
        return self.flash_seconds * (1 - _INSTALL_SHARE)


def dpu_name(node: str, pci_label: str) -> str:
    """DPF's DPU object name: `<node>-<pci address in label form>`."""
    return f"{node.lower()}-{pci_label}"


def netns_name(state_dir: Path, index: int) -> str:
    """A namespace name unique to this simulation (two `up`s in different state dirs do not collide)."""
    tag = hashlib.sha256(str(state_dir).encode()).hexdigest()[:6]
    return f"dpfsim-{tag}-{index}"


def _internal_ip(node: dict[str, Any]) -> str | None:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return str(addr.get("address"))
    return None


def host_plan(node: dict[str, Any], index: int, state_dir: Path) -> HostPlan:
    """The emulated hardware of one host Node, from its labels."""
    meta = node.get("metadata") or {}
    name = str(meta["name"])
    labels: dict[str, str] = meta.get("labels") or {}
    home = state_dir / "hosts" / name
    dpus: list[DpuPlan] = []
    for key, value in sorted(labels.items()):
        match = _PCI_LABEL.match(key)
        if match is None:
            continue
        i = int(match.group(1))
        pf0 = labels.get(_PF0_LABEL.format(index=i)) or f"p{2 * i}"
        pf1 = pf0[:-1] + str(int(pf0[-1]) + 1) if pf0[-1:].isdigit() else f"{pf0}1"
        pci = value.replace("-", ":")
        dpus.append(
            DpuPlan(
                name=dpu_name(name, value),
                pci=pci,
                pf_names=(pf0, pf1),
                dms_port=free_port(),
                state_dir=home / "bluefields" / value,
            )
        )
    ip = _internal_ip(node) or f"{_OOB_NETWORK}.{10 + index % 240}"
    return HostPlan(
        node=name,
        netns=netns_name(state_dir, index),
        bridge_address=f"{ip}/24",
        gateway=".".join([*ip.split(".")[:3], "254"]),
        sysfs_root=home / "sys",
        dpus=dpus,
    )


def rack_plan(
    nodes: list[dict[str, Any]],
    state_dir: Path,
    timing: FlashTiming,
    *,
    dpu_os: Literal["off", "dpfd", "join"] = "dpfd",
    dataplane: Literal["off", "ovs"] = "off",
) -> RackPlan:
    hosts = [
        host_plan(node, i, state_dir)
        for i, node in enumerate(nodes)
        if ((node.get("metadata") or {}).get("labels") or {}).get(DPU_ENABLED_LABEL) == "true"
    ]
    return RackPlan(
        hosts=hosts,
        install_bytes_per_s=timing.install_bytes_per_s,
        reboot_seconds=timing.reboot_seconds,
        dpu_os=dpu_os,
        dataplane=dataplane,
    )


def gossip_config(key_file: Path, port: int) -> dict[str, Any]:
    """`gossip:` of a simulated dpfd: on, on loopback at its own port (kept across restarts: gossip knows a member by
    name and address), memberlist's local timing. The DPUs a host flashes get the same key and profile via bf.cfg."""
    return {"enabled": True, "bind": f"127.0.0.1:{port}", "profile": "local", "keyFile": str(key_file),
            "rejoinInterval": 1.0}  # fmt: skip


def host_dpfd_config(
    host: HostPlan, etcd_endpoints: list[str], home: Path, flash_seconds: float, gossip: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The dpfd config (YAML data) of a simulated host: its sysfs tree, namespace and DMS endpoints from the rack,
    and `gossip` (see gossip_config) when given."""
    config: dict[str, Any] = {
        "node": host.node,
        "role": "host",
        "etcd": {"endpoints": etcd_endpoints},
        "stateDir": str(home / "state"),
        "runtimeDir": str(home / "run"),
        "sysfsRoot": str(host.sysfs_root),
        "provisioning": {
            "netns": host.netns,
            "dms": {
                "targets": {d.pci.replace(":", "-"): address_of_dpu(d) for d in host.dpus},
                "insecure": True,
                "rebootPoll": 0.5,
                "readyTimeout": 60.0,
            },
            "hostPower": {"emulated": {"stateFile": str(home / "power.json"), "rebootSeconds": flash_seconds / 10}},
            # A simulation moves faster than a data centre: look again and retry sooner.
            "recheckInterval": 1.0,
            "retryBase": 1.0,
            "retryCap": 30.0,
            "discoveryInterval": 5.0,
        },
    }
    if gossip is not None:
        config["gossip"] = gossip
    return config
