"""The DPU dpfd's data plane, wired from `dataplane:` in dpfd.yaml: DPF's sfc-controller and SFC CNI on one OVS.

- ServiceInterface intents -> ports on br-sfc (ServiceInterfaceReconciler, ovsdbapp);
- ServiceChain intents -> flows on br-sfc (ServiceChainReconciler, ovs-ofctl bundles), each chain port resolved by
  ChainPortLookup from the ServiceInterface intents this node has;
- the SFC CNI socket (CniServer + CniService: veths with their host ends in `cniNetns`, the port with
  dpf-id=<podns>/<pod>/<ifname>, addresses from this node's ranges of the IPAM pools in etcd (EtcdAllocator; a
  host-local pool under <stateDir>/cni-ipam when dpfd has no store), and leaked addresses collected at start and
  every `cniLeakInterval` seconds);
- VswitchdMonitor: after ovs-vswitchd (re)starts, every chain's flows go back at once (one bundle) and every
  ServiceInterface and ServiceChain intent is reconciled again (reports, ofports that moved).

OVSDB may be down when dpfd starts: the connection is retried in the background; until it is up, reconciles fail
with "not connected" and the agent retries them. A port getting an OpenFlow number (a CNI port, a port ovs-vswitchd
just applied) re-runs the chains at once, so they do not wait for their retry timer.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from dpfd.agent.backoff import Backoff
from dpfd.agent.reconciler import Reconciler
from dpfd.config import DpfdConfig
from dpfd.dpu.chain_ports import ChainPortLookup, ServiceInterfaceIndex
from dpfd.dpu.flows.model import chain_cookie
from dpfd.dpu.flows.reconciler import KIND as CHAIN_KIND
from dpfd.dpu.flows.reconciler import ServiceChainReconciler
from dpfd.dpu.ovs.connection import OvsdbConnection, RowChange
from dpfd.dpu.ovs.monitor import VswitchdMonitor
from dpfd.dpu.ovs.ports import DPF_ID
from dpfd.dpu.ovs.reconciler import KIND as INTERFACE_KIND
from dpfd.dpu.ovs.reconciler import ServiceInterfaceReconciler

if TYPE_CHECKING:
    from dpfd.dpu.cni.server import CniServer
    from dpfd.dpu.cni.service import CniService
    from dpfd.store.client import Store

log = logging.getLogger(__name__)


class Dataplane:
    def __init__(self, config: DpfdConfig, store: Store | None = None) -> None:
        dp = config.dataplane
        self.config = config
        self.store = store
        self.conn = OvsdbConnection(dp.ovsdb, timeout=dp.ovsdb_timeout)
        self.index = ServiceInterfaceIndex()
        settings = dp.port_settings()
        self.interfaces = ServiceInterfaceReconciler(
            self.conn, config.node, settings, apply_timeout=dp.apply_timeout, index=self.index
        )
        argv = list(dp.ofctl)
        if argv[1:3] == ["-O", "OpenFlow14"]:
            argv[1:3] = []  # Ofctl adds -O OpenFlow14 itself
        self.chains = ServiceChainReconciler(
            config.node, ChainPortLookup(self.index, self.conn, settings), dp.ofctl_bridge(), argv, retry=dp.chain_retry
        )
        self.index.on_change = lambda ref: self._kick_chains()
        self.monitor = VswitchdMonitor(self.conn, dp.bridge, self.restore, apply_timeout=dp.apply_timeout)
        self.cni_socket = dp.cni_socket or config.runtime_dir / "sfc-cni.sock"
        self._cni: CniServer | None = None
        self.cni: CniService | None = None
        self._leaks: asyncio.Task[None] | None = None
        self._connecting: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def reconcilers(self) -> list[Reconciler]:
        return [self.interfaces, self.chains]

    async def start(self, intents_listed: asyncio.Event | None = None) -> None:
        """Start the CNI socket now and connect to OVSDB in the background (retrying while it is down); once
        connected and `intents_listed` (the agent's ready), flows of chains this node no longer has are deleted."""
        await self._start_cni()
        self._connecting = asyncio.get_running_loop().create_task(self._connect(intents_listed), name="ovsdb connect")

    async def stop(self) -> None:
        for task in (self._connecting, self._leaks):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._cni is not None:
            await self._cni.stop()
        await self.monitor.stop()
        await self.conn.stop()

    async def restore(self) -> None:
        """ovs-vswitchd (re)started and lost every flow: all chains back in one bundle, then everything re-run."""
        try:
            n = await self.chains.flows.restore()
            log.info("OVS: restored the flows of %d chains after an ovs-vswitchd start", n)
        except Exception as e:  # the chains' own reconciles below apply them again
            log.warning("OVS: restoring flows failed (%s); the chains are reconciled again", e)
        link = self.chains.link
        if link is not None:
            link.kick_kind(INTERFACE_KIND)
            link.kick_kind(CHAIN_KIND)

    async def collect_stale(self) -> list[int]:
        """Delete flows of cookies that are no ServiceChain intent of this node (deleted while dpfd was away)."""
        link = self.chains.link
        if link is None:
            return []
        keep = [chain_cookie(r.namespace, r.name) for r in link.refs(CHAIN_KIND)]
        stale = await self.chains.flows.collect(keep)
        if stale:
            log.info("OVS: deleted the flows of %d stale chain cookies", len(stale))
        return stale

    def _kick_chains(self) -> None:
        link = self.chains.link
        if link is not None:
            link.kick_kind(CHAIN_KIND)

    def _on_interface(self, change: RowChange) -> None:
        if change.event == "delete" or not change.row.get("external_ids", {}).get(DPF_ID):
            return
        if change.event == "update" and (change.old is None or "ofport" not in change.old):
            return
        ofport = change.row.get("ofport") or [0]
        if ofport and int(ofport[0]) > 0:
            self._kick_chains()

    async def _connect(self, intents_listed: asyncio.Event | None) -> None:
        backoff = Backoff(base=0.2, cap=5.0)
        attempt = 0
        while True:
            try:
                await self.conn.start()
                break
            except Exception as e:
                attempt += 1
                delay = backoff.delay(attempt)
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("OVS: cannot connect to %s (%s); retrying in %.1fs", self.conn.remote, e, delay)
                await asyncio.sleep(delay)
        self.conn.listen("Interface", ("name", "external_ids", "ofport"), self._on_interface)
        try:
            await self.monitor.start()
        except Exception as e:  # e.g. no br-sfc yet: the monitor is what restores after restarts
            log.warning("OVS: cannot start the ovs-vswitchd monitor on %s: %s", self.config.dataplane.bridge, e)
        self.connected.set()
        log.info("OVS: connected to %s", self.conn.remote)
        link = self.chains.link
        if link is not None:
            link.kick_kind(INTERFACE_KIND)
            link.kick_kind(CHAIN_KIND)
        if intents_listed is not None:
            await intents_listed.wait()
            try:
                await self.collect_stale()
            except Exception as e:
                log.warning("OVS: collecting stale chain flows failed: %s", e)
            if link is not None:
                # As DPF's stale collection: br-sfc ports no ServiceInterface of this node declares (physical,
                # monitor and CNI-owned ports stay); only once every listed intent has been reconciled.
                try:
                    removed = await self.interfaces.collect_stale_ports(link.refs(INTERFACE_KIND))
                    if removed:
                        log.info("OVS: removed %d stale br-sfc ports: %s", len(removed), ", ".join(removed))
                except Exception as e:
                    log.warning("OVS: collecting stale br-sfc ports failed: %s", e)

    async def _start_cni(self) -> None:
        from dpfd.dpu.cni.bridge import OvsVsctlPorts
        from dpfd.dpu.cni.ipam import AddressAllocator, HostLocalAllocator
        from dpfd.dpu.cni.ipam_store import EtcdAllocator
        from dpfd.dpu.cni.server import CniServer
        from dpfd.dpu.cni.service import CniService

        dp = self.config.dataplane
        if not dp.ovsdb.startswith("unix:"):
            log.warning("SFC CNI: OVSDB %s is not a unix socket; no CNI socket", dp.ovsdb)
            return
        ports = OvsVsctlPorts(dp.ovsdb.removeprefix("unix:"), timeout=dp.ovsdb_timeout)
        allocator: AddressAllocator
        if self.store is not None:
            allocator = EtcdAllocator(self.store, self.config.node)
        else:
            allocator = HostLocalAllocator(Path(self.config.state_dir) / "cni-ipam")
        self.cni = CniService(allocator, ports, host_netns=dp.cni_netns)
        self._cni = await CniServer(self.cni, self.cni_socket).start()
        self._leaks = asyncio.get_running_loop().create_task(self._collect_leaks(), name="cni leaks")

    async def _collect_leaks(self) -> None:
        """A pass over every pool this node holds addresses in now, then over the pools the CNI knows each
        cniLeakInterval; a failed pass is logged and the next one tries again."""
        assert self.cni is not None
        everything = True
        while True:
            try:
                await self.cni.collect_leaks(self.config.dataplane.bridge, everything=everything)
                everything = False
            except Exception as e:
                log.warning("SFC CNI: collecting leaked addresses failed: %s", e)
            await asyncio.sleep(self.config.dataplane.cni_leak_interval)
