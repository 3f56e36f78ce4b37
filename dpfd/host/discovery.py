"""Which BlueFields sit on this host, read from sysfs, and whether the host's OOB bridge is ready (DPF's detector).

DPF's `dpudetector` scans `/sys/bus/pci/devices` for BlueField device ids and writes NFD features, from which
Node labels follow; `node_labels()` produces the same labels. A DPU's functions share bus:device; function 0
is PF0 and function 1 is PF1. DPUs are numbered by PCI address, as the detector numbers them (it reads the
directory in name order). A broken sysfs entry is skipped and described in `Discovery.problems`; the scan never
raises for what it finds on disk.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import BaseModel
from pyroute2.netlink.exceptions import NetlinkError

from dpfd.api.wellknown import NODE_DPU_ENABLED, NODE_OOB_BRIDGE_CONFIGURED, node_dpu_pci_address, node_dpu_pf0_name
from dpfd.host.netns import iproute

MELLANOX_VENDOR = 0x15B3
BLUEFIELD_MODELS: dict[int, Literal["BF2", "BF3"]] = {0xA2D6: "BF2", 0xA2DC: "BF3"}
DEFAULT_BRIDGE = "br-dpu"
MAIN_ROUTE_TABLE = 254

# domain:bus:device.function, e.g. 0000:03:00.1 (lower or upper case hex, as the kernel names them)
PCI_FUNCTION_RE = re.compile(r"^([0-9a-fA-F]{4}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$")
LABEL_VALUE_RE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


class PhysicalFunction(BaseModel):
    """One PF of a BlueField: its PCI function, netdev and SR-IOV state."""

    address: str  # 0000:03:00.0
    function: int
    netdev: str | None
    sriov_total_vfs: int | None
    sriov_num_vfs: int | None


class DiscoveredDpu(BaseModel):
    """One BlueField on this host."""

    index: int  # 0, 1, ... by PCI address: the <i> in feature.node.kubernetes.io/dpu-<i>-...
    pci_address: str  # DPF's label form, domain-bus-device: 0000-03-00
    model: Literal["BF2", "BF3"]
    device_id: str  # 0xa2dc
    pf0_name: str | None  # PF0's netdev, e.g. ens1f0np0 (None if the function has no netdev)
    pfs: list[PhysicalFunction]  # PF0 first

    @property
    def pci_device(self) -> str:
        """The sysfs form without function, 0000:03:00."""
        return self.pci_address.replace("-", ":")

    def pf(self, function: int) -> PhysicalFunction | None:
        return next((pf for pf in self.pfs if pf.function == function), None)


class BridgeStatus(BaseModel):
    """The host's OOB bridge (br-dpu) as netlink shows it."""

    name: str
    netns: str | None  # None: the current network namespace
    exists: bool = False
    is_bridge: bool = False
    ipv4_addresses: list[str] = []
    default_route: bool = False  # a default IPv4 route in the main table leaves through the bridge
    problem: str | None = None  # why it is not configured, in words; None when it is

    @property
    def configured(self) -> bool:
        """DPF's detector rule: the bridge exists, is a bridge, and carries the default route. We also want IPv4."""
        return self.problem is None


class Discovery(BaseModel):
    """The result of one scan: what goes into the host's report and its Node labels."""

    dpus: list[DiscoveredDpu]
    bridge: BridgeStatus
    oob_bridge_configured: bool
    problems: list[str]  # entries skipped, and why

    def dpu(self, pci_address: str) -> DiscoveredDpu | None:
        """The DPU at a PCI address, in label form (0000-03-00) or sysfs form (0000:03:00)."""
        wanted = pci_address.replace(":", "-").lower()
        return next((d for d in self.dpus if d.pci_address == wanted), None)


def scan(sysfs_root: Path, *, bridge: str = DEFAULT_BRIDGE, netns: str | None = None) -> Discovery:
    """Scan `<sysfs_root>/bus/pci/devices` for BlueFields and look at the OOB bridge in `netns` (blocking, cheap)."""
    problems: list[str] = []
    dpus = scan_pci(Path(sysfs_root), problems)
    status = bridge_status(bridge, netns)
    return Discovery(dpus=dpus, bridge=status, oob_bridge_configured=status.configured, problems=problems)


def scan_pci(sysfs_root: Path, problems: list[str]) -> list[DiscoveredDpu]:
    """The BlueFields under `<sysfs_root>/bus/pci/devices`, numbered by PCI address; problems are appended."""
    devices_dir = sysfs_root / "bus" / "pci" / "devices"
    try:
        entries = sorted(devices_dir.iterdir(), key=lambda p: p.name.lower())
    except OSError as e:
        problems.append(f"{devices_dir}: cannot list PCI devices: {e.strerror or e}")
        return []
    # "0000:03:00" -> {function: (entry, device id)}
    groups: dict[str, dict[int, tuple[Path, int]]] = {}
    for entry in entries:
        match = PCI_FUNCTION_RE.match(entry.name)
        if match is None:
            problems.append(f"{entry.name}: not a PCI function address (domain:bus:device.function)")
            continue
        vendor = _read_hex_id(entry, "vendor", problems)
        if vendor is None or vendor != MELLANOX_VENDOR:
            continue
        device = _read_hex_id(entry, "device", problems)
        if device is None or device not in BLUEFIELD_MODELS:
            continue  # another Mellanox device, or a BlueField VF (0x101e)
        domain, bus, dev, fn = match.groups()
        groups.setdefault(f"{domain}:{bus}:{dev}".lower(), {})[int(fn)] = (entry, device)

    dpus: list[DiscoveredDpu] = []
    for pci_device, functions in sorted(groups.items()):
        if 0 not in functions:
            problems.append(f"{pci_device}: BlueField functions {sorted(functions)} found but no function 0 (PF0)")
            continue
        pfs = [_physical_function(entry, fn, problems) for fn, (entry, _) in sorted(functions.items()) if fn in (0, 1)]
        device_id = functions[0][1]
        dpus.append(
            DiscoveredDpu(
                index=len(dpus),
                pci_address=pci_device.replace(":", "-"),
                model=BLUEFIELD_MODELS[device_id],
                device_id=f"0x{device_id:04x}",
                pf0_name=pfs[0].netdev,
                pfs=pfs,
            )
        )
    return dpus


def _physical_function(entry: Path, function: int, problems: list[str]) -> PhysicalFunction:
    return PhysicalFunction(
        address=entry.name.lower(),
        function=function,
        netdev=_netdev_of(entry, problems),
        sriov_total_vfs=_read_count(entry, "sriov_totalvfs", problems),
        sriov_num_vfs=_read_count(entry, "sriov_numvfs", problems),
    )


def _read_text(entry: Path, name: str, problems: list[str]) -> str | None:
    try:
        return (entry / name).read_text().strip()
    except FileNotFoundError:
        problems.append(f"{entry.name}: no {name} file")
    except (OSError, UnicodeDecodeError) as e:
        problems.append(f"{entry.name}: cannot read {name}: {e}")
    return None


def _read_hex_id(entry: Path, name: str, problems: list[str]) -> int | None:
    text = _read_text(entry, name, problems)
    if text is None:
        return None
    if re.fullmatch(r"0x[0-9a-fA-F]{4}", text) is None:
        problems.append(f"{entry.name}: {name} is not a PCI id like 0x15b3: {text[:40]!r}")
        return None
    return int(text, 16)


def _read_count(entry: Path, name: str, problems: list[str]) -> int | None:
    text = _read_text(entry, name, problems)
    if text is None:
        return None
    if not text.isdigit():
        problems.append(f"{entry.name}: {name} is not a count: {text[:40]!r}")
        return None
    return int(text)


def _netdev_of(entry: Path, problems: list[str]) -> str | None:
    """The function's netdev: the one name under `<fn>/net/` (none if no driver is bound)."""
    try:
        names = sorted(p.name for p in (entry / "net").iterdir())
    except OSError:
        problems.append(f"{entry.name}: no netdev (no net/ directory)")
        return None
    if not names:
        problems.append(f"{entry.name}: no netdev (net/ is empty)")
        return None
    if not is_label_value(names[0]):
        problems.append(f"{entry.name}: netdev name {names[0]!r} is not a valid Kubernetes label value")
    return names[0]


def bridge_status(name: str = DEFAULT_BRIDGE, netns: str | None = None) -> BridgeStatus:
    """What netlink shows of bridge `name` in `netns` (None: the current one). Blocking; never creates a netns."""
    status = BridgeStatus(name=name, netns=netns)
    where = f"network namespace {netns}" if netns else "the host network namespace"
    try:
        with iproute(netns) as ipr:
            links = ipr.link("dump", ifname=name)
            if not links:
                status.problem = f"bridge {name} does not exist in {where}"
                return status
            link = links[0]
            status.exists = True
            index = link["index"]
            info = link.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            status.is_bridge = kind == "bridge"
            status.ipv4_addresses = [
                a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=socket.AF_INET, index=index)
            ]
            status.default_route = any(
                r["dst_len"] == 0 and r.get_attr("RTA_OIF") == index and r["table"] == MAIN_ROUTE_TABLE
                for r in ipr.route("dump", family=socket.AF_INET)
            )
    except FileNotFoundError:
        status.problem = f"{where} does not exist"
        return status
    except (OSError, NetlinkError) as e:
        status.problem = f"cannot read bridge {name} in {where}: {e}"
        return status
    if not status.is_bridge:
        status.problem = f"{name} in {where} is not a bridge (kind {kind or 'none'})"
    elif not status.ipv4_addresses:
        status.problem = f"bridge {name} in {where} has no IPv4 address"
    elif not status.default_route:
        status.problem = f"bridge {name} in {where} carries no default IPv4 route"
    return status


def is_label_value(value: str) -> bool:
    """Whether `value` is a valid Kubernetes label value (at most 63 characters, alphanumeric at both ends)."""
    return len(value) <= 63 and LABEL_VALUE_RE.fullmatch(value) is not None


def node_labels(discovery: Discovery) -> dict[str, str]:
    """The Node labels DPF's detector and NodeFeatureRule produce for this host.

    `dpu-oob-bridge-configured` is present only when the bridge is ready, and its value is empty: the detector
    writes the feature as `dpu-oob-bridge-configured=` and DPF checks only that the label exists.
    """
    labels: dict[str, str] = {}
    if discovery.dpus:
        labels[NODE_DPU_ENABLED] = "true"
    for dpu in discovery.dpus:
        labels[node_dpu_pci_address(dpu.index)] = dpu.pci_address
        if dpu.pf0_name and is_label_value(dpu.pf0_name):
            labels[node_dpu_pf0_name(dpu.index)] = dpu.pf0_name
    if discovery.oob_bridge_configured:
        labels[NODE_OOB_BRIDGE_CONFIGURED] = ""
    return labels
