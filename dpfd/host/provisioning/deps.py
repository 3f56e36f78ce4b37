"""The provisioning machine's view of the world. Each is implemented by a real component (the BFB cache, the
DMS client, pyroute2 host networking, sysfs discovery) and, in dpf-sim, by the emulated BlueField behind it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class DpuTarget:
    """One DPU as the host sees it: its object name and where it sits on the PCI bus."""

    name: str  # the DPU object's name, e.g. worker-1-0000-03-00
    namespace: str
    pci_address: str  # DPF's label form, 0000-03-00
    node: str  # the host Node


@dataclass(frozen=True)
class FetchedBfb:
    path: Path
    sha256: str
    size: int


class ProvisioningFailure(Exception):
    """A step failed for a reason worth a condition: `reason` is the condition's reason (CamelCase)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Inventory(Protocol):
    """What discovery found on this host."""

    async def has_dpu(self, pci_address: str) -> bool: ...

    async def oob_bridge_configured(self) -> bool: ...


class BfbSource(Protocol):
    async def fetch(self, url: str, on_progress: Callable[[int, int | None], None] | None = None) -> FetchedBfb:
        """The image, downloaded once into the host's cache. Raises ProvisioningFailure with a download reason."""
        ...


class DmsSession(Protocol):
    """One DPU's DMS, spoken to as NVIDIA's is (gNMI Set, gNOI OS.Install / Activate / Verify, RebootStatus)."""

    async def set_dpu_mode(self) -> None: ...

    async def install(self, version: str, path: Path, on_progress: Callable[[int, int], None] | None = None) -> bool:
        """Install an image; False if the DPU already held this version (nothing was sent)."""
        ...

    async def install_bf_cfg(self, version: str, data: bytes) -> bool: ...

    async def activate(self, version: str) -> None: ...

    async def running_version(self) -> str: ...

    async def wait_reboot_done(self, within: float) -> None: ...

    async def close(self) -> None: ...


class DmsProvider(Protocol):
    def missing(self, dpu: DpuTarget) -> str | None:
        """Why no DMS can serve this DPU (nothing configured for it), in words; None if one can."""
        ...

    async def ensure_running(self, dpu: DpuTarget) -> None:
        """The "DMS Deployment" phase: make sure a DMS serves this DPU (start or find it), until it answers."""
        ...

    async def session(self, dpu: DpuTarget) -> DmsSession: ...


class HostPower(Protocol):
    """Reboots the host the way DPF does (ipmitool power cycle / reset, or BF-SLR), and tells its uptime."""

    async def reboot(self, method: str) -> None: ...

    def uptime(self) -> float: ...


class HostNetwork(Protocol):
    async def configure(self, dpu: DpuTarget, *, num_vfs: int, mtu: int) -> dict[str, Any]:
        """VFs through sriov_numvfs, VF0 into br-dpu, MTU; idempotent; returns what it changed."""
        ...


class DpuPresence(Protocol):
    """Whether a DPU's own dpfd is up, as the host learns it from gossip: the member with role dpu naming this host
    and the DPU's PCI address. Advisory: it only lets the host stop waiting sooner than DMS would tell it."""

    def started(self, host: str, pci_address: str) -> float | None:
        """When the DPU's dpfd that is alive now started (its wall clock); None when none is alive."""
        ...

    async def wait_started(self, host: str, pci_address: str, *, after: float, not_at: float, within: float) -> bool:
        """Wait until the DPU's dpfd is alive with a start time later than `after` and other than `not_at` (one
        seen before); False after `within` seconds."""
        ...


BfCfgRenderer = Callable[[dict[str, Any], dict[str, Any]], bytes]  # (flavor spec, context) -> bf.cfg
