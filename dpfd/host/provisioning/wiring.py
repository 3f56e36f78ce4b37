"""The real components behind the provisioning machine's protocols (`deps`), and their errors as condition reasons.

Each adapter is thin: discovery for the inventory, the BFB cache, the DMS client, pyroute2 host networking and
the bf.cfg renderer do the work; here their failures become `ProvisioningFailure(reason, message)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dpfd.api.provisioning import DPUFlavorSpec
from dpfd.config import PCI_LABEL_RE
from dpfd.host.bfb.cache import BfbCache
from dpfd.host.bfb.errors import BfbFetchError
from dpfd.host.bfb.progress import Progress as DownloadProgress
from dpfd.host.bfcfg import (
    DEFAULT_CONTROL_PLANE_MTU,
    BfCfgContext,
    BfCfgError,
    DpuDaemonSettings,
    DpuGossipSettings,
    KubeadmJoin,
    render_bf_cfg,
)
from dpfd.host.discovery import Discovery, scan
from dpfd.host.dms.client import DmsClient
from dpfd.host.dms.errors import DmsError
from dpfd.host.dms.tls import TlsFiles
from dpfd.host.hostnet import HostNetworkError, SysfsHostNetwork
from dpfd.host.provisioning.deps import DmsSession, DpuTarget, FetchedBfb, ProvisioningFailure


class DiscoveryInventory:
    """The inventory from a sysfs scan, refreshed at most every `max_age` seconds (a scan reads many files)."""

    def __init__(self, sysfs_root: Path, *, bridge: str = "br-dpu", netns: str | None = None, max_age: float = 5.0):
        self.sysfs_root = sysfs_root
        self.bridge = bridge
        self.netns = netns
        self.max_age = max_age
        self._last: tuple[float, Discovery] | None = None

    async def discovery(self) -> Discovery:
        now = time.monotonic()
        if self._last is None or now - self._last[0] > self.max_age:
            # A thread: the scan reads sysfs and asks netlink (pyroute2's sync API runs its own event loop).
            found = await asyncio.to_thread(scan, self.sysfs_root, bridge=self.bridge, netns=self.netns)
            self._last = (now, found)
        return self._last[1]

    async def has_dpu(self, pci_address: str) -> bool:
        return (await self.discovery()).dpu(pci_address) is not None

    async def oob_bridge_configured(self) -> bool:
        return (await self.discovery()).oob_bridge_configured


class CachedBfbSource:
    """BFBs through the host's content-addressed cache: one download per image, however many DPUs need it."""

    def __init__(self, cache: BfbCache) -> None:
        self.cache = cache

    async def fetch(self, url: str, on_progress: Callable[[int, int | None], None] | None = None) -> FetchedBfb:
        def progress(p: DownloadProgress) -> None:
            if on_progress is not None:
                on_progress(p.bytes_done, p.bytes_total)

        try:
            got = await self.cache.fetch(url, on_progress=progress)
        except BfbFetchError as e:
            raise ProvisioningFailure(str(e.reason), str(e)) from None
        return FetchedBfb(path=got.path, sha256=got.sha256, size=got.size)


class _ClientSession:
    """A DmsSession over one DmsClient, with DMS errors as condition reasons."""

    def __init__(self, client: DmsClient, reboot_poll: float) -> None:
        self.client = client
        self.reboot_poll = reboot_poll

    async def set_dpu_mode(self) -> None:
        await _dms(self.client.set_dpu_mode())

    async def install(self, version: str, path: Path, on_progress: Callable[[int, int], None] | None = None) -> bool:
        result = await _dms(self.client.install(version, path, on_progress=on_progress))
        return bool(result.transferred)

    async def install_bf_cfg(self, version: str, data: bytes) -> bool:
        result = await _dms(self.client.install_bf_cfg(version, data))
        return bool(result.transferred)

    async def activate(self, version: str) -> None:
        await _dms(self.client.activate(version))

    async def running_version(self) -> str:
        return str(await _dms(self.client.verify()))

    async def wait_reboot_done(self, within: float) -> None:
        await _dms(self.client.wait_reboot_done(poll=self.reboot_poll, timeout=within))

    async def close(self) -> None:
        await self.client.close()


async def _dms(call: Any) -> Any:
    try:
        return await call
    except DmsError as e:
        raise ProvisioningFailure(_dms_reason(e), str(e)) from None


def _dms_reason(e: DmsError) -> str:
    # A CamelCase reason per failure class, e.g. DmsInstallError -> DMSInstallError.
    return "DMS" + type(e).__name__.removeprefix("Dms")


class StaticDmsProvider:
    """DMS endpoints known in advance (dpf-sim's emulated BlueFields, or dmsd instances the host runs).

    `ensure_running` waits until the DPU's DMS answers on TCP: DPF's readiness check for its DMS pod.
    """

    def __init__(
        self,
        targets: Callable[[DpuTarget], str | None],
        tls: TlsFiles | None = None,
        *,
        ready_timeout: float = 300.0,
        reboot_poll: float = 3.0,
    ) -> None:
        self.targets = targets
        self.tls = tls
        self.ready_timeout = ready_timeout
        self.reboot_poll = reboot_poll

    def missing(self, dpu: DpuTarget) -> str | None:
        if self.targets(dpu) is not None:
            return None
        return (f"no DMS is configured for PCI address {dpu.pci_address or '(none)'} of DPU {dpu.name} "
                f"(dpfd config provisioning.dms.targets)")  # fmt: skip

    def _target(self, dpu: DpuTarget) -> str:
        target = self.targets(dpu)
        if target is None:
            raise ProvisioningFailure("DMSTargetUnknown", self.missing(dpu) or "")
        return target

    async def ensure_running(self, dpu: DpuTarget) -> None:
        target = self._target(dpu)
        host, _, port = target.rpartition(":")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ready_timeout
        last = ""
        while loop.time() < deadline:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host.strip("[]"), int(port)), 5.0)
                writer.close()
                return
            except (OSError, TimeoutError) as e:
                last = str(e) or type(e).__name__
            await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
        raise ProvisioningFailure("DMSNotReady", f"DMS for {dpu.name} at {target} did not answer within "
                                  f"{self.ready_timeout:g}s: {last}")  # fmt: skip

    async def session(self, dpu: DpuTarget) -> DmsSession:
        return _ClientSession(DmsClient(self._target(dpu), self.tls, name=dpu.name), self.reboot_poll)


class HostNetworkAdapter:
    def __init__(self, network: SysfsHostNetwork) -> None:
        self.network = network

    async def configure(self, dpu: DpuTarget, *, num_vfs: int, mtu: int) -> dict[str, Any]:
        try:
            return await self.network.configure(dpu, num_vfs=num_vfs, mtu=mtu)
        except HostNetworkError as e:
            raise ProvisioningFailure("HostNetworkNotReady", str(e)) from None


def bf_cfg_renderer(
    dpfd: DpuDaemonSettings, gossip: Callable[[], DpuGossipSettings | None] | None = None
) -> Callable[[dict[str, Any], dict[str, Any]], bytes]:
    """The machine's renderer: the flavor spec and per-DPU context as the intent carries them, to bf.cfg bytes.
    `gossip` gives the DPU's gossip settings as they are at each render (keys rotate)."""

    def render(flavor: dict[str, Any], ctx: dict[str, Any]) -> bytes:
        cluster = ctx.get("cluster") or {}
        join = cluster.get("joinCommand")
        bfb = ctx.get("bfb") or {}
        # DPF's label spelling (0000-03-00); whoever compares it uses dpfd.gossip.meta.pci_slot
        pci = str(ctx.get("pciAddress") or "").strip().lower().replace(":", "-")
        try:
            context = BfCfgContext(
                dpu_name=ctx["dpuName"],
                node_name=ctx["nodeName"],
                # An address in another form than DPF's label form is left out: the DPU then gossips without it, and
                # the host waits on DMS alone for its reboot.
                pci_address=pci if PCI_LABEL_RE.match(pci) else None,
                dpfd=dpfd if gossip is None else dpfd.model_copy(update={"gossip": gossip()}),
                bfb_name=bfb.get("name"),
                bfb_version=bfb.get("fileName"),
                join=KubeadmJoin.from_join_command(join) if join else None,
                # the DPFOperatorConfig's networking.controlPlaneMTU, carried in the intent by the controller
                control_plane_mtu=int(ctx.get("controlPlaneMTU") or DEFAULT_CONTROL_PLANE_MTU),
            )
            return render_bf_cfg(DPUFlavorSpec.model_validate(flavor), context)
        except (BfCfgError, ValueError) as e:
            raise ProvisioningFailure("BFCfgInvalid", f"bf.cfg for {ctx.get('dpuName')}: {e}") from None

    return render
