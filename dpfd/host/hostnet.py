"""DPF's "Host Network Configuration" phase done directly: VFs through sysfs, VF0 of PF0 into br-dpu with pyroute2.

DPF runs `hostnetwork.sh` in a pod per DPU: it checks that br-dpu exists, enables VFs on PF0 (and PF1) through
`sriov_numvfs`, enslaves PF0's VF0 (`virtfn0`) to br-dpu, sets its MTU and brings it up. This module does the
same without a shell, idempotently: each step looks first and changes only what differs, and the result lists
what changed. The bridge is checked before anything is touched, so a host without br-dpu is left as it was.

Writes to `sriov_numvfs` go through `write_sriov_numvfs()`. The kernel refuses a write it cannot honour (EBUSY for
a new non-zero count while VFs are enabled, ERANGE above `sriov_totalvfs`), so a change N -> M goes through 0.
The emulated sysfs (`dpfd.sim.sysfs`) cannot fail a write; it reports the refusal in `sriov_numvfs_error`
next to the file, which this module reads back while it waits. On a real host that file never exists.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from dpfd.host.discovery import DEFAULT_BRIDGE, BridgeStatus, DiscoveredDpu, bridge_status, scan
from dpfd.host.netns import iproute

SRIOV_ERROR_FILE = "sriov_numvfs_error"
DEFAULT_TIMEOUT = 60.0  # per wait; DPF's script retries the bridge check 10 times, 5 s apart
POLL_INTERVAL = 0.02
MIN_MTU, MAX_MTU = 68, 9216  # IPv4's minimum; DPF's highSpeedMTU maximum
IFF_UP = 0x1

STEP_VALIDATE = "validate"
STEP_BRIDGE = "wait for bridge"
STEP_VFS = "set sriov_numvfs"
STEP_VF0 = "wait for VF0 netdev"
STEP_ATTACH = "attach VF0 to bridge"

T = TypeVar("T")


class HostNetworkError(Exception):
    """Host networking for one DPU failed at one step; the message names the DPU, the step and the reason."""

    def __init__(self, dpu: str, step: str, reason: str) -> None:
        super().__init__(f"DPU {dpu}: host network: {step}: {reason}")
        self.dpu = dpu
        self.step = step
        self.reason = reason


class HostNetworkResult(BaseModel):
    """What `configure_host_network` found and changed (empty `changes`: it was already configured)."""

    dpu: str  # PCI address, label form
    bridge: str
    netns: str | None
    vf_netdev: str
    num_vfs: int
    mtu: int
    changes: list[str]

    @property
    def changed(self) -> bool:
        return bool(self.changes)

    def summary(self) -> str:
        if not self.changes:
            return f"DPU {self.dpu}: host network already configured ({self.vf_netdev} in {self.bridge})"
        return f"DPU {self.dpu}: " + "; ".join(self.changes)


def write_sriov_numvfs(path: Path, n: int) -> None:
    """Write `n` to a PF's `sriov_numvfs`: the one way host code changes a VF count.

    Opens without O_CREAT (a missing file is an error, never created) and writes in one call. A stale
    emulator error file is removed first so that a later refusal is this write's. Raises OSError as the
    kernel reports it (EBUSY, ERANGE, ...).
    """
    path.with_name(SRIOV_ERROR_FILE).unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, f"{n}\n".encode())
    finally:
        os.close(fd)


def sriov_write_refusal(path: Path) -> str | None:
    """The refusal the emulated kernel reported for the last write to `path`, if any."""
    try:
        return path.with_name(SRIOV_ERROR_FILE).read_text().strip() or "refused"
    except FileNotFoundError:
        return None


def read_sriov_numvfs(path: Path) -> int | None:
    """The current VF count, or None if the file reads as something else (empty while being written)."""
    text = path.read_text().strip()
    return int(text) if text.isdigit() else None


async def configure_host_network(
    dpu: DiscoveredDpu,
    *,
    sysfs_root: Path,
    num_vfs: int,
    mtu: int,
    bridge: str = DEFAULT_BRIDGE,
    netns: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (a deadline per wait, not for the whole call)
) -> HostNetworkResult:
    """Enable `num_vfs` VFs on the DPU's PFs and put PF0's VF0 into `bridge` with `mtu`, up. Idempotent.

    `netns` is where the bridge and the VF netdevs live (None: this process's namespace). Each wait (bridge, VFs,
    VF0's netdev) gives up after `timeout` seconds. Raises HostNetworkError.
    """
    name = dpu.pci_address
    devices = Path(sysfs_root) / "bus" / "pci" / "devices"
    pf_dirs = [devices / pf.address for pf in dpu.pfs]
    await asyncio.to_thread(_validate, name, pf_dirs, num_vfs, mtu)

    # DPF checks the bridge first; so does this, so that a host without it is left untouched.
    status = await _wait(
        lambda: asyncio.to_thread(bridge_status, bridge, netns), lambda s: _bridge_missing(s) is None, timeout
    )
    if status is None:
        missing = _bridge_missing(await asyncio.to_thread(bridge_status, bridge, netns))
        if missing is not None:  # else it turned up just now
            raise HostNetworkError(name, STEP_BRIDGE, f"{missing} (waited {timeout:g}s)")

    changes: list[str] = []
    for pf_dir in pf_dirs:
        change = await ensure_num_vfs(name, pf_dir, num_vfs, timeout)
        if change:
            changes.append(change)

    try:
        vf0 = await _wait(lambda: asyncio.to_thread(_vf0_netdev, pf_dirs[0], netns), lambda f: f is not None, timeout)
    except (NetlinkError, OSError) as e:
        raise HostNetworkError(name, STEP_VF0, f"{pf_dirs[0].name}: {e}") from e
    if vf0 is None:
        named = await asyncio.to_thread(_vf0_sysfs_name, pf_dirs[0])
        where = f"network namespace {netns}" if netns else "the host network namespace"
        missing = f"sysfs names {named} but {where} has no such netdev" if named else "virtfn0 has no net/ entry"
        raise HostNetworkError(name, STEP_VF0, f"{pf_dirs[0].name}: {missing} (waited {timeout:g}s)")

    try:
        changes += await asyncio.to_thread(_attach, vf0, bridge, mtu, netns)
    except (NetlinkError, OSError, LookupError) as e:
        raise HostNetworkError(name, STEP_ATTACH, f"{vf0} into {bridge}: {e}") from e
    return HostNetworkResult(
        dpu=name, bridge=bridge, netns=netns, vf_netdev=vf0, num_vfs=num_vfs, mtu=mtu, changes=changes
    )


def _validate(name: str, pf_dirs: list[Path], num_vfs: int, mtu: int) -> None:
    if not pf_dirs:
        raise HostNetworkError(name, STEP_VALIDATE, "the DPU has no PF")
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise HostNetworkError(name, STEP_VALIDATE, f"mtu {mtu} is outside {MIN_MTU}..{MAX_MTU}")
    if num_vfs < 1:
        raise HostNetworkError(name, STEP_VALIDATE, f"num_vfs {num_vfs}: at least 1 is needed (VF0 joins the bridge)")
    for pf_dir in pf_dirs:
        try:
            total = int((pf_dir / "sriov_totalvfs").read_text().strip())
        except (OSError, ValueError) as e:
            raise HostNetworkError(name, STEP_VALIDATE, f"{pf_dir.name} has no readable sriov_totalvfs: {e}") from e
        if num_vfs > total:
            raise HostNetworkError(
                name, STEP_VALIDATE, f"num_vfs {num_vfs} exceeds {pf_dir.name}'s sriov_totalvfs {total}"
            )


def _bridge_missing(status: BridgeStatus) -> str | None:
    """What keeps VF0 from joining the bridge (DPF waits for the bridge with IPv4; a default route is not needed)."""
    if not (status.exists and status.is_bridge and status.ipv4_addresses):
        return status.problem
    return None


async def _wait(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float) -> T | None:
    """Probe until `done(value)` and return that value, or None once `within` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = await probe()
        if done(value):
            return value
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(POLL_INTERVAL)


def _vfs_state(pf_dir: Path, n: int) -> bool:
    """Whether exactly the VFs for count `n` are visible: virtfn<n-1> present and virtfn<n> absent."""
    return (n == 0 or os.path.lexists(pf_dir / f"virtfn{n - 1}")) and not os.path.lexists(pf_dir / f"virtfn{n}")


async def ensure_num_vfs(name: str, pf_dir: Path, n: int, within: float = DEFAULT_TIMEOUT) -> str | None:
    """Bring one PF's VF count to `n` (through 0 if another count is set) and wait for the VFs; a change note, or None.

    `name` names the DPU in errors; `pf_dir` is the PF's `bus/pci/devices/<address>`. Raises HostNetworkError.
    """
    path = pf_dir / "sriov_numvfs"
    try:
        current = await asyncio.to_thread(read_sriov_numvfs, path)
    except OSError as e:
        raise HostNetworkError(name, STEP_VFS, f"cannot read {pf_dir.name}/sriov_numvfs: {e}") from e
    if current == n:
        await _set_and_wait(name, pf_dir, n, within, write=False)  # the VFs themselves may still be appearing
        return None
    through_zero = bool(current) and n != 0  # the kernel refuses a new non-zero count while VFs are enabled
    if through_zero:
        await _set_and_wait(name, pf_dir, 0, within, write=True)
    await _set_and_wait(name, pf_dir, n, within, write=True)
    return f"{pf_dir.name} sriov_numvfs {current} -> {n}" + (" (through 0)" if through_zero else "")


async def _set_and_wait(name: str, pf_dir: Path, n: int, within: float, *, write: bool) -> None:
    path = pf_dir / "sriov_numvfs"
    if write:
        try:
            await asyncio.to_thread(write_sriov_numvfs, path, n)
        except OSError as e:
            reason = errno.errorcode.get(e.errno or 0, "error")
            raise HostNetworkError(
                name, STEP_VFS, f"writing {n} to {pf_dir.name}/sriov_numvfs: {reason}: {e.strerror}"
            ) from e

    def settled() -> str | None:
        refusal = sriov_write_refusal(path) if write else None
        if refusal is not None:
            return "refused: " + refusal
        return "ok" if read_sriov_numvfs(path) == n and _vfs_state(pf_dir, n) else None

    outcome = await _wait(lambda: asyncio.to_thread(settled), lambda s: s is not None, within)
    if outcome is None:
        have = sorted(p.name for p in pf_dir.iterdir() if p.name.startswith("virtfn"))
        raise HostNetworkError(
            name,
            STEP_VFS,
            f"{pf_dir.name}: the VF count did not reach {n} within {within:g}s ({len(have)} virtfn links)",
        )
    if outcome != "ok":
        raise HostNetworkError(name, STEP_VFS, f"writing {n} to {pf_dir.name}/sriov_numvfs was {outcome}")


def _iproute(netns: str | None) -> IPRoute:
    return iproute(netns)


def _vf0_sysfs_name(pf_dir: Path) -> str | None:
    """The netdev name sysfs gives the PF's VF0 (udev may rename it, so it is read each time)."""
    try:
        names = sorted(p.name for p in (pf_dir / "virtfn0" / "net").iterdir())
    except FileNotFoundError:
        return None
    return names[0] if names else None


def _vf0_netdev(pf_dir: Path, netns: str | None) -> str | None:
    """The PF's VF0 netdev once sysfs names it and netlink has it."""
    named = _vf0_sysfs_name(pf_dir)
    if named is None:
        return None
    with _iproute(netns) as ipr:
        return named if ipr.link("dump", ifname=named) else None


def _attach(vf: str, bridge: str, mtu: int, netns: str | None) -> list[str]:
    """VF into the bridge with `mtu`, up; returns what had to change."""
    changes: list[str] = []
    with _iproute(netns) as ipr:
        links = ipr.link("dump", ifname=vf)
        bridges = ipr.link("dump", ifname=bridge)
        if not links:
            raise LookupError(f"netdev {vf} vanished")
        if not bridges:
            raise LookupError(f"bridge {bridge} vanished")
        link, bridge_index = links[0], bridges[0]["index"]
        index = link["index"]
        if link.get_attr("IFLA_MTU") != mtu:
            ipr.link("set", index=index, mtu=mtu)
            changes.append(f"{vf} mtu {link.get_attr('IFLA_MTU')} -> {mtu}")
        if link.get_attr("IFLA_MASTER") != bridge_index:
            ipr.link("set", index=index, master=bridge_index)
            changes.append(f"{vf} enslaved to {bridge}")
        if not link["flags"] & IFF_UP:
            ipr.link("set", index=index, state="up")
            changes.append(f"{vf} up")
    return changes


class HasPciAddress(Protocol):
    @property
    def pci_address(self) -> str: ...


class SysfsHostNetwork:
    """Host networking for the provisioning machine: finds the DPU by PCI address in a fresh scan, then configures."""

    def __init__(
        self,
        sysfs_root: Path,
        *,
        bridge: str = DEFAULT_BRIDGE,
        netns: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.sysfs_root = Path(sysfs_root)
        self.bridge = bridge
        self.netns = netns
        self.timeout = timeout

    async def configure(self, dpu: HasPciAddress, *, num_vfs: int, mtu: int) -> dict[str, Any]:
        """Configure one DPU's host network; the result as JSON-ready data. Raises HostNetworkError."""
        found = await asyncio.to_thread(scan, self.sysfs_root, bridge=self.bridge, netns=self.netns)
        discovered = found.dpu(dpu.pci_address)
        if discovered is None:
            raise HostNetworkError(
                dpu.pci_address, "find DPU", f"no BlueField at this PCI address under {self.sysfs_root}"
            )
        result = await configure_host_network(
            discovered,
            sysfs_root=self.sysfs_root,
            num_vfs=num_vfs,
            mtu=mtu,
            bridge=self.bridge,
            netns=self.netns,
            timeout=self.timeout,
        )
        return result.model_dump()
