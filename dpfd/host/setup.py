"""The host role's reconcilers, built from dpfd's configuration: DPU provisioning, BFB downloads, host discovery."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dpfd.agent.backoff import Backoff
from dpfd.config import DpfdConfig, HostPowerSettings
from dpfd.host.bfb.cache import BfbCache
from dpfd.host.bfb_intent import BfbReconciler
from dpfd.host.bfcfg import DpuDaemonSettings, DpuGossipSettings
from dpfd.host.dms.tls import TlsFiles
from dpfd.host.host_intent import HostReconciler
from dpfd.host.hostnet import SysfsHostNetwork
from dpfd.host.power import CommandHostPower
from dpfd.host.provisioning.deps import DpuTarget, HostPower
from dpfd.host.provisioning.machine import DpuProvisioner, ProvisioningDeps
from dpfd.host.provisioning.presence import GossipDpuPresence
from dpfd.host.provisioning.wiring import (
    CachedBfbSource,
    DiscoveryInventory,
    HostNetworkAdapter,
    StaticDmsProvider,
    bf_cfg_renderer,
)

if TYPE_CHECKING:
    from dpfd.agent.reconciler import Reconciler
    from dpfd.gossip.agent import GossipAgent


def host_power(settings: HostPowerSettings) -> HostPower:
    if settings.emulated is not None:
        # dpf-sim only; imported here so the host role carries no simulator code otherwise.
        from dpfd.sim.host_power import EmulatedHostPower

        emulated = settings.emulated
        return EmulatedHostPower(emulated.state_file, reboot_seconds=emulated.reboot_seconds)
    commands = {"cycle": tuple(settings.cycle_command), "reset": tuple(settings.reset_command)}
    return CommandHostPower(commands, proc_root=settings.proc_root)


def dpu_gossip(config: DpfdConfig, gossip: GossipAgent | None) -> Callable[[], DpuGossipSettings | None]:
    """The gossip settings a flashed DPU's dpfd gets: this host's keys as they are now, its profile and timing."""

    def settings() -> DpuGossipSettings | None:
        if gossip is None:
            return None
        return DpuGossipSettings(keys=gossip.keyring.keys, profile=config.gossip.profile,
                                 rejoin_interval=config.gossip.rejoin_interval)  # fmt: skip

    return settings


def host_reconcilers(config: DpfdConfig, gossip: GossipAgent | None = None) -> list[Reconciler]:
    """DpuProvisioner (kind DPU), BfbReconciler (kind BFB) and HostReconciler (kind Host), sharing one BFB cache
    and one discovery. A host with no DMS targets configured still starts: its DPUs wait in DMS Deployment.
    With `gossip` (this dpfd's member), flashed DPUs gossip too, and a DPU's dpfd joining ends its reboot's wait."""
    prov = config.provisioning
    retry = Backoff(base=prov.retry_base, cap=prov.retry_cap)
    cache = BfbCache(config.bfb_cache_dir(), connect_timeout=prov.bfb_connect_timeout,
                     idle_timeout=prov.bfb_idle_timeout)  # fmt: skip
    inventory = DiscoveryInventory(config.sysfs_root, bridge=prov.bridge, netns=prov.netns)
    dms = prov.dms
    tls = TlsFiles(dms.ca_file, dms.cert_file, dms.key_file) if dms.ca_file and dms.cert_file and dms.key_file else None
    targets = dict(dms.targets)

    def target_of(dpu: DpuTarget) -> str | None:
        return targets.get(dpu.pci_address.replace(":", "-").lower())

    deps = ProvisioningDeps(
        inventory=inventory,
        bfbs=CachedBfbSource(cache),
        dms=StaticDmsProvider(target_of, tls, ready_timeout=dms.ready_timeout, reboot_poll=dms.reboot_poll),
        power=host_power(prov.host_power),
        network=HostNetworkAdapter(
            SysfsHostNetwork(config.sysfs_root, bridge=prov.bridge, netns=prov.netns, timeout=prov.host_network_timeout)
        ),
        render_bf_cfg=bf_cfg_renderer(
            DpuDaemonSettings(etcd_endpoints=tuple(config.dpu_etcd_endpoints())), dpu_gossip(config, gossip)
        ),
        retry=retry,
        dpu_reboot_timeout=prov.dpu_reboot_timeout,
        host_reboot_timeout=prov.host_power.reboot_timeout,
        recheck_interval=prov.recheck_interval,
        num_vfs=prov.num_vfs,
        mtu=prov.mtu,
        presence=GossipDpuPresence(gossip) if gossip is not None else None,
    )
    # The provisioner first: on shutdown its work stops before the BFB reconciler closes the shared cache.
    return [
        DpuProvisioner(config.node, config.state_dir, deps),
        BfbReconciler(config.node, cache, retry=retry),
        HostReconciler(config.node, inventory, interval=prov.discovery_interval),
    ]
