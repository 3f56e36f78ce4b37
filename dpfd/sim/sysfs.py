"""An emulated sysfs tree with BlueField PCI functions, for tests and dpf-sim (this machine has no SR-IOV).

The layout follows the kernel's: functions live under `devices/pci<domain>:<bus>/<address>/` and are reached
through `bus/pci/devices/<address>` symlinks; a PF has `vendor`, `device`, `sriov_totalvfs`, `sriov_numvfs`,
`sriov_offset`, `sriov_stride` and `net/<netdev>/` (whose `device` links back to the function), and
`class/net/<netdev>` links to that netdev directory.

SR-IOV: the kernel creates VFs inside the write to `sriov_numvfs`. A plain file cannot act on a write, so
`serve_sriov()` polls the files and does what the kernel would: for N it creates VF functions
(`virtfn0..N-1` symlinks, each VF with `net/<vf netdev>`), for 0 it removes them. VF i is complete before its
`virtfn<i>` link appears, and on removal each VF's link goes after the VF (VF0 last), so a reader that sees
`virtfn<N-1>` (or no `virtfn0`) sees the finished state, as it would after the kernel's synchronous write.

A plain file cannot refuse a write either. Where the kernel fails the write (EBUSY when VFs are enabled and a
different non-zero count is written, ERANGE above `sriov_totalvfs`, EINVAL for garbage), the emulator puts the
old value back and writes the kernel's message into `sriov_numvfs_error` next to it (`SRIOV_ERROR_FILE`).
`dpfd.host.hostnet.write_sriov_numvfs` removes a stale error file before each write, and hostnet's wait reads it
back; on a real host the file never exists and the write itself raises.

VF netdevs: on a real host they are kernel netdevs. Here they are directories only, unless a
`VfNetdevFactory` is given: `VethVfNetdevs` makes a real veth pair for chosen VFs (by default VF0), the VF end
named as the VF netdev, so a real Linux bridge can enslave it.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pyroute2 import IPRoute

from dpfd.host.discovery import BLUEFIELD_MODELS, MELLANOX_VENDOR
from dpfd.host.hostnet import SRIOV_ERROR_FILE
from dpfd.host.netns import iproute

BLUEFIELD_VF_DEVICE = 0x101E  # ConnectX family mlx5Gen Virtual Function
DEVICE_ID_OF_MODEL = {model: device for device, model in BLUEFIELD_MODELS.items()}
PCI_DEVICE_RE = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}$")
VIRTFN_RE = re.compile(r"^virtfn(\d+)$")
PF_PORT_SUFFIX_RE = re.compile(r"np\d+$")


@dataclass(frozen=True)
class EmulatedVf:
    """One VF the emulator creates: its PCI function and netdev name, and the PF it belongs to."""

    pf_address: str  # 0000:03:00.0
    pf_netdev: str
    index: int
    address: str  # 0000:03:00.2
    netdev: str  # ens1f0v0


class VfNetdevFactory(Protocol):
    """Makes (and removes) a real netdev for a VF, as the mlx5 driver would; may skip VFs it does not care about."""

    def create(self, vf: EmulatedVf) -> None: ...

    def remove(self, vf: EmulatedVf) -> None: ...


def default_vf_peer_name(vf: EmulatedVf) -> str:
    """The DPU-side end of a VF's veth (what pf0vf0 is on the DPU), within the 15-character netdev limit."""
    return f"{vf.netdev[:12]}-p"


class VethVfNetdevs:
    """VF netdevs as veth pairs in `netns` (None: the current one): the VF end carries the VF's netdev name."""

    def __init__(
        self,
        netns: str | None = None,
        indices: Collection[int] = (0,),
        peer_name: Callable[[EmulatedVf], str] = default_vf_peer_name,
    ) -> None:
        self.netns = netns
        self.indices = frozenset(indices)
        self.peer_name = peer_name

    def _iproute(self) -> IPRoute:
        return iproute(self.netns)  # setns, not pyroute2's fork (see dpfd.host.netns)

    def create(self, vf: EmulatedVf) -> None:
        if vf.index not in self.indices:
            return
        with self._iproute() as ipr:
            if not ipr.link("dump", ifname=vf.netdev):  # already there after an emulator restart
                ipr.link("add", ifname=vf.netdev, kind="veth", peer=self.peer_name(vf))

    def remove(self, vf: EmulatedVf) -> None:
        if vf.index not in self.indices:
            return
        with self._iproute() as ipr:
            for link in ipr.link("dump", ifname=vf.netdev):
                ipr.link("del", index=link["index"])  # takes the peer with it


def vf_netdev_name(pf_netdev: str, index: int) -> str:
    """mlx5's VF naming: ens1f0np0 -> ens1f0v0."""
    return f"{PF_PORT_SUFFIX_RE.sub('', pf_netdev)}v{index}"


def _routing_id(address: str) -> tuple[str, int]:
    """0000:03:00.2 -> ("0000", routing id bus<<8 | device<<3 | function)."""
    domain, bus, rest = address.split(":")
    device, function = rest.split(".")
    return domain, int(bus, 16) << 8 | int(device, 16) << 3 | int(function)


def _address(domain: str, routing_id: int) -> str:
    return f"{domain}:{routing_id >> 8:02x}:{(routing_id >> 3) & 0x1F:02x}.{routing_id & 7}"


class EmulatedSysfs:
    """A sysfs tree under `root` holding emulated PCI functions; point discovery and hostnet at `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.events: list[str] = []  # what the emulated kernel did with sriov_numvfs writes, in order
        self._pfs: tuple[int, list[Path]] | None = None  # (devices dir mtime, the PFs then)
        self._seen: dict[str, tuple[int, int, int]] = {}  # PF -> sriov_numvfs (mtime, size, inode) last acted on
        self._passes = 0
        for sub in ("bus/pci/devices", "class/net", "devices"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # --- building the tree -------------------------------------------------------------------------------------

    def function_dir(self, address: str) -> Path:
        """`bus/pci/devices/<address>`: the path the host code reads (a symlink, as on a real host)."""
        return self.root / "bus" / "pci" / "devices" / address

    def add_pci_function(self, address: str, *, vendor: int, device: int) -> Path:
        """A bare PCI function (any vendor): its directory with `vendor` and `device`, linked from bus/pci/devices."""
        domain, bus = address.split(":")[:2]
        real = self.root / "devices" / f"pci{domain}:{bus}" / address
        real.mkdir(parents=True)
        (real / "vendor").write_text(f"0x{vendor:04x}\n")
        (real / "device").write_text(f"0x{device:04x}\n")
        os.symlink(os.path.relpath(real, self.function_dir(address).parent), self.function_dir(address))
        return self.function_dir(address)

    def add_netdev(self, address: str, netdev: str) -> None:
        """Give a function a netdev: `<fn>/net/<netdev>/device` and `class/net/<netdev>`, as a bound driver does."""
        real = self.function_dir(address).resolve()
        net = real / "net" / netdev
        net.mkdir(parents=True)
        os.symlink(os.path.relpath(real, net), net / "device")
        os.symlink(os.path.relpath(net, self.root / "class" / "net"), self.root / "class" / "net" / netdev)

    def add_bluefield(
        self,
        pci: str = "0000:03:00",
        model: Literal["BF2", "BF3"] = "BF3",
        pf_names: tuple[str, ...] = ("ens1f0np0", "ens1f1np1"),
        total_vfs: int = 16,
    ) -> list[str]:
        """A BlueField at `pci` (domain:bus:device) with one PF per name (functions 0, 1); returns the PF addresses."""
        pci = pci.lower()
        if PCI_DEVICE_RE.match(pci) is None:
            raise ValueError(f"pci {pci!r} is not domain:bus:device like 0000:03:00")
        if model not in DEVICE_ID_OF_MODEL:
            raise ValueError(f"model {model!r} is not one of {sorted(DEVICE_ID_OF_MODEL)}")
        if not 1 <= len(pf_names) <= 2:
            raise ValueError(f"a BlueField has one or two PFs, not {len(pf_names)}")
        _, pf0_rid = _routing_id(f"{pci}.0")
        addresses = []
        for function, pf_name in enumerate(pf_names):
            address = f"{pci}.{function}"
            fn = self.add_pci_function(address, vendor=MELLANOX_VENDOR, device=DEVICE_ID_OF_MODEL[model])
            # VFs follow the PFs in routing-id order: PF0's first, then PF1's, as mlx5 firmware lays them out.
            first_vf = pf0_rid + len(pf_names) + function * total_vfs
            (fn / "sriov_totalvfs").write_text(f"{total_vfs}\n")
            (fn / "sriov_numvfs").write_text("0\n")
            (fn / "sriov_offset").write_text(f"{first_vf - (pf0_rid + function)}\n")
            (fn / "sriov_stride").write_text("1\n")
            self.add_netdev(address, pf_name)
            addresses.append(address)
        return addresses

    # --- the kernel's side of sriov_numvfs ---------------------------------------------------------------------

    def _sriov_pfs(self) -> list[Path]:
        devices = self.root / "bus" / "pci" / "devices"
        mtime = devices.stat().st_mtime_ns
        if self._pfs is None or self._pfs[0] != mtime:  # functions come and go (VFs): list again
            self._pfs = (mtime, [fn for fn in sorted(devices.iterdir()) if (fn / "sriov_numvfs").is_file()])
        return self._pfs[1]

    @staticmethod
    def _enabled_vfs(pf: Path) -> int:
        """How many VFs exist now: the count of virtfn links (the tree is the state, so a restart resumes)."""
        return sum(1 for p in pf.iterdir() if VIRTFN_RE.match(p.name))

    def _vf(self, pf: Path, index: int) -> EmulatedVf:
        domain, pf_rid = _routing_id(pf.name)
        offset = int((pf / "sriov_offset").read_text())
        stride = int((pf / "sriov_stride").read_text())
        pf_netdev = sorted(p.name for p in (pf / "net").iterdir())[0]
        return EmulatedVf(
            pf_address=pf.name,
            pf_netdev=pf_netdev,
            index=index,
            address=_address(domain, pf_rid + offset + index * stride),
            netdev=vf_netdev_name(pf_netdev, index),
        )

    async def apply_sriov_writes(self, vf_netdevs: VfNetdevFactory | None = None) -> list[str]:
        """One pass over every PF's sriov_numvfs: act on new values as the kernel would; returns what it did.

        Also appended to `events`.
        """
        done: list[str] = []
        for pf in self._sriov_pfs():
            if not self._numvfs_touched(pf):
                continue
            text = (pf / "sriov_numvfs").read_text().strip()
            enabled = self._enabled_vfs(pf)
            if not text:
                continue  # a write caught between truncate and write: look again next pass
            refusal = self._refusal(pf, text, enabled)
            if refusal is not None:
                (pf / SRIOV_ERROR_FILE).write_text(refusal + "\n")
                _replace(pf / "sriov_numvfs", f"{enabled}\n")
                done.append(f"{pf.name}: refused {text!r}: {refusal}")
                continue
            wanted = int(text)
            if wanted == enabled:
                continue
            if wanted == 0:
                for index in reversed(range(enabled)):
                    await self._remove_vf(pf, self._vf(pf, index), vf_netdevs)
            else:
                for index in range(wanted):
                    await self._create_vf(pf, self._vf(pf, index), vf_netdevs)
            done.append(f"{pf.name}: {enabled} -> {wanted} VFs")
        self.events += done
        return done

    @staticmethod
    def _refusal(pf: Path, text: str, enabled: int) -> str | None:
        """The kernel's reason to fail this write (drivers/pci/iov.c sriov_numvfs_store), or None."""
        if not text.isdigit() or int(text) > 0xFFFF:
            return f"EINVAL: {text[:20]!r} is not a number of VFs"
        wanted = int(text)
        total = int((pf / "sriov_totalvfs").read_text())
        if wanted > total:
            return f"ERANGE: {wanted} VFs requested, the device supports at most {total}"
        if enabled and wanted and wanted != enabled:
            return f"EBUSY: {enabled} VFs already enabled. Disable before enabling {wanted} VFs"
        return None

    def _numvfs_touched(self, pf: Path) -> bool:
        """Whether sriov_numvfs may have been written since the last look: a changed stat, or a full look due.

        A host's fleet of emulated PFs is polled often; reading every file every pass would cost a core. The full
        look every `_FULL_LOOK` passes covers two writes within one timestamp tick (equal mtime and size).
        """
        st = (pf / "sriov_numvfs").stat()
        seen = (st.st_mtime_ns, st.st_size, st.st_ino)
        key = str(pf)
        if self._seen.get(key) == seen and self._passes % _FULL_LOOK:
            return False
        self._seen[key] = seen
        return True

    async def serve_sriov(self, *, poll_interval: float = 0.01, vf_netdevs: VfNetdevFactory | None = None) -> None:
        """Run the kernel's side of sriov_numvfs until cancelled (start it with asyncio.create_task)."""
        while True:
            self._passes += 1
            await self.apply_sriov_writes(vf_netdevs)
            await asyncio.sleep(poll_interval)

    async def _create_vf(self, pf: Path, vf: EmulatedVf, vf_netdevs: VfNetdevFactory | None) -> None:
        real = pf.resolve().parent / vf.address
        real.mkdir()
        (real / "vendor").write_text(f"0x{MELLANOX_VENDOR:04x}\n")
        (real / "device").write_text(f"0x{BLUEFIELD_VF_DEVICE:04x}\n")
        os.symlink(f"../{pf.name}", real / "physfn")
        os.symlink(os.path.relpath(real, self.function_dir(vf.address).parent), self.function_dir(vf.address))
        if vf_netdevs is not None:
            await asyncio.to_thread(vf_netdevs.create, vf)  # the netdev exists before sysfs names it
        self.add_netdev(vf.address, vf.netdev)
        os.symlink(f"../{vf.address}", pf / f"virtfn{vf.index}")  # last: the VF is complete once this appears

    async def _remove_vf(self, pf: Path, vf: EmulatedVf, vf_netdevs: VfNetdevFactory | None) -> None:
        (self.root / "class" / "net" / vf.netdev).unlink(missing_ok=True)
        if vf_netdevs is not None:
            await asyncio.to_thread(vf_netdevs.remove, vf)
        real = self.function_dir(vf.address).resolve()
        self.function_dir(vf.address).unlink()
        shutil.rmtree(real)
        (pf / f"virtfn{vf.index}").unlink()  # last: while the link exists, readers count the VF as present


_FULL_LOOK = 50  # passes between reads of every sriov_numvfs, changed stat or not


def _replace(path: Path, text: str) -> None:
    """Write a file atomically (a reader never sees it empty)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
