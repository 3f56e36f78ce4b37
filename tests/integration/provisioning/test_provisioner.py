"""The host's DPU phase machine against real parts: a real BFB download over HTTP into the cache, a real gRPC
DMS (the emulated BlueField's), real netlink in a fresh network namespace for the host network. Only the
BlueField (its sysfs tree, DMS and reboots) and the host's power are emulated.

The kill tests stop the provisioner in the middle of each phase (its background work cancelled, as a dying
process's would be) and start a new one on the same state dir: it must finish, and the DPU must have been
flashed exactly once.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyroute2 import IPRoute, netns

from dpfd.agent.backoff import Backoff
from dpfd.agent.reconciler import AgentLink
from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.host.bfb import BfbCache
from dpfd.host.bfcfg import DpuDaemonSettings
from dpfd.host.hostnet import SysfsHostNetwork
from dpfd.host.provisioning import phases as P
from dpfd.host.provisioning.machine import DpuProvisioner, ProvisioningDeps
from dpfd.host.provisioning.wiring import (
    CachedBfbSource,
    DiscoveryInventory,
    HostNetworkAdapter,
    StaticDmsProvider,
    bf_cfg_renderer,
)
from dpfd.sim.bfb_server import BfbServerConfig, Fault, start_bfb_server
from dpfd.sim.bluefield.dms_server import DmsFaults, EmulatedDms
from dpfd.sim.host_power import EmulatedHostPower
from dpfd.sim.sysfs import EmulatedSysfs, VethVfNetdevs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

NS = "dpf-operator-system"
NODE = "worker-1"
DPU = "worker-1-0000-03-00"
REF = ObjectRef(kind="DPU", namespace=NS, name=DPU)


@pytest.fixture
def ns() -> Iterator[str]:
    name = f"dpf-pv-{uuid.uuid4().hex[:8]}"
    netns.create(name)
    with IPRoute(netns=name, flags=0) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
        ipr.link("add", ifname="br-dpu", kind="bridge")
        index = ipr.link_lookup(ifname="br-dpu")[0]
        ipr.link("set", index=index, state="up")
        ipr.addr("add", index=index, address="198.51.100.1", prefixlen=24)
        ipr.route("add", dst="0.0.0.0/0", gateway="198.51.100.254", oif=index)
    yield name
    netns.remove(name)


@dataclass
class Host:
    """One emulated host with one BlueField, and what its provisioner needs."""

    state_dir: Path
    deps: ProvisioningDeps
    dms: EmulatedDms
    power: EmulatedHostPower
    bfb_url: str
    cache: BfbCache

    def provisioner(self) -> DpuProvisioner:
        return DpuProvisioner(NODE, self.state_dir, self.deps)


@pytest.fixture
async def host(tmp_path: Path, ns: str) -> AsyncIterator[Host]:
    sysfs = EmulatedSysfs(tmp_path / "sys")
    sysfs.add_bluefield(pci="0000:03:00", model="BF3", pf_names=("ens1f0np0", "ens1f1np1"), total_vfs=16)
    sriov = asyncio.create_task(sysfs.serve_sriov(vf_netdevs=VethVfNetdevs(ns)))
    bfbs = await start_bfb_server(config=BfbServerConfig(default_size=2 << 20, faults={"missing": Fault(status=404)}))
    dms = EmulatedDms(state_dir=tmp_path / "dms", install_bytes_per_s=8 << 20, reboot_seconds=0.3, name=DPU)
    await dms.start()
    power = EmulatedHostPower(tmp_path / "host-power.json", reboot_seconds=0.2)
    cache = BfbCache(tmp_path / "bfb-cache")
    deps = ProvisioningDeps(
        inventory=DiscoveryInventory(tmp_path / "sys", netns=ns, max_age=0.0),
        bfbs=CachedBfbSource(cache),
        dms=StaticDmsProvider(lambda dpu: dms.address, ready_timeout=5.0, reboot_poll=0.05),
        power=power,
        network=HostNetworkAdapter(SysfsHostNetwork(tmp_path / "sys", netns=ns, timeout=10.0)),
        render_bf_cfg=bf_cfg_renderer(DpuDaemonSettings(etcd_endpoints=("http://127.0.0.1:2379",))),
        retry=Backoff(base=0.05, cap=0.2),
        recheck_interval=0.05,
        dpu_reboot_timeout=10.0,
    )
    try:
        yield Host(tmp_path / "state", deps, dms, power, bfbs.url_for("bf-bundle-2.9"), cache)
    finally:
        sriov.cancel()
        await cache.close()
        await dms.stop()
        await bfbs.close()


def dpu_intent(bfb_url: str, **context: Any) -> Intent:
    return Intent(
        node=NODE,
        ref=REF,
        uid="6c1f-uid",
        generation=1,
        spec={
            "nodeName": NODE,
            "bfb": "bf-bundle",
            "pciAddress": "0000-03-00",
            "dpuFlavor": "hbn",
            "nodeEffect": {"noEffect": True},
            "automaticNodeReboot": True,
        },
        context={
            "bfb": {"name": "bf-bundle", "url": bfb_url, "fileName": "bf-bundle-2.9.bfb"},
            "flavor": {},
            "cluster": {"name": "dpu-cplane"},
            **context,
        },
    )


class Driver:
    """Runs one DPU's reconciles the way the agent does: again whenever the provisioner kicks."""

    def __init__(self, prov: DpuProvisioner, intent: Intent) -> None:
        self.prov = prov
        self.intent = intent
        self.reports: list[Report] = []
        self._kicked = asyncio.Event()
        prov.bind(AgentLink(kick=self._kick))

    def _kick(self, ref: ObjectRef, delay: float) -> None:
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self._kicked.set)
        else:
            self._kicked.set()

    async def run_until(self, done: Callable[[Report], bool], within: float = 20.0) -> Report:
        async with asyncio.timeout(within):
            while True:
                self._kicked.clear()
                report = await self.prov.reconcile(REF, self.intent)
                assert report is not None
                self.reports.append(report)
                if report.phase == P.CLUSTER_CONFIG and not self.intent.context.get("clusterNodeReady"):
                    # The controller's part: the DPU's Node became Ready in its cluster.
                    self.intent = self.intent.model_copy(
                        update={"context": {**self.intent.context, "clusterNodeReady": True}}
                    )
                    continue
                if done(report):
                    return report
                await self._kicked.wait()


def phase_is(phase: str) -> Callable[[Report], bool]:
    return lambda r: r.phase == phase


def condition(report: Report, kind: str) -> tuple[str, str]:
    c = next(c for c in report.conditions if c.type == kind)
    return c.status, c.reason


async def test_a_dpu_goes_through_every_phase_to_ready(host: Host) -> None:
    driver = Driver(host.provisioner(), dpu_intent(host.bfb_url))
    ready = await driver.run_until(phase_is(P.READY))
    phases = [r.phase for r in driver.reports]
    seen = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    assert seen == [P.PENDING, P.DMS_DEPLOYMENT, P.OS_INSTALLING, P.REBOOTING, P.HOST_NETWORK, P.CLUSTER_CONFIG,
                    P.READY]  # fmt: skip
    assert all(c.status == "True" for c in ready.conditions), ready.conditions
    assert {c.type for c in ready.conditions} >= {P.COND_OS_INSTALLED, P.COND_REBOOTED, P.COND_HOST_NETWORK}
    state = host.dms.state
    assert (state.installs, state.activations, state.reboots) == (2, 1, 1)  # the BFB and the bf.cfg
    assert state.running_version.startswith("bf-bundle-2.9.bfb")
    assert host.power.reboots == {"reset": 1}
    assert ready.details["nodeEffect"] == {"request": "none"}


@pytest.mark.parametrize("phase", [P.PENDING, P.DMS_DEPLOYMENT, P.OS_INSTALLING, P.REBOOTING, P.HOST_NETWORK])
async def test_a_restart_in_any_phase_resumes_and_flashes_once(host: Host, phase: str) -> None:
    first = host.provisioner()
    driver = Driver(first, dpu_intent(host.bfb_url))
    await driver.run_until(phase_is(phase))
    await first.close()  # dpfd dies here: its background work stops mid-step

    second = Driver(host.provisioner(), driver.intent)
    await second.run_until(phase_is(P.READY))
    state = host.dms.state
    assert (state.installs, state.activations, state.reboots) == (2, 1, 1), state
    assert sum(host.power.reboots.values()) == 1


async def test_a_bad_bfb_url_leaves_the_dpu_pending_with_the_reason(host: Host) -> None:
    bad = host.bfb_url.rsplit("/", 1)[0] + "/missing.bfb"
    driver = Driver(host.provisioner(), dpu_intent(host.bfb_url))
    driver.intent = driver.intent.model_copy(update={"context": {**driver.intent.context,
                                                                 "bfb": {"name": "x", "url": bad}}})  # fmt: skip
    report = await driver.run_until(lambda r: any(c.type == P.COND_BFB_READY for c in r.conditions))
    assert report.phase == P.PENDING
    assert condition(report, P.COND_BFB_READY)[0] == "False"
    msg = next(c.message for c in report.conditions if c.type == P.COND_BFB_READY)
    assert "404" in msg and "missing.bfb" in msg
    assert host.dms.state.installs == 0


async def test_a_failed_install_is_an_error_that_is_retried_until_it_succeeds(host: Host) -> None:
    host.dms.faults = DmsFaults(install_error="TOO_LARGE")
    driver = Driver(host.provisioner(), dpu_intent(host.bfb_url))
    failed = await driver.run_until(phase_is(P.ERROR))
    status, reason = condition(failed, P.COND_OS_INSTALLED)
    assert (status, reason) == ("False", "DMSInstallError")
    assert "TOO_LARGE" in next(c.message for c in failed.conditions if c.type == P.COND_OS_INSTALLED)
    assert failed.details["attempts"] == 1
    host.dms.faults = DmsFaults()  # the cause goes away: the backoff retry (not an operator) recovers the DPU
    await driver.run_until(phase_is(P.READY))
    assert (host.dms.state.installs, host.dms.state.activations) == (2, 1)


async def test_the_backoff_grows_while_the_same_phase_keeps_failing(host: Host) -> None:
    # Each retry passes Node Effect and DMS Deployment again on its way to OS Installing; those successes must not
    # reset the count, or the backoff would stay at its first step forever.
    host.dms.faults = DmsFaults(install_error="TOO_LARGE")
    driver = Driver(host.provisioner(), dpu_intent(host.bfb_url))
    failed = await driver.run_until(lambda r: r.phase == P.ERROR and r.details["attempts"] == 3)
    assert condition(failed, P.COND_OS_INSTALLED) == ("False", "DMSInstallError")
    delays = [r.details["retryAt"] for r in driver.reports if r.phase == P.ERROR]
    assert len(set(delays)) == 3  # three failures, three retry times
    host.dms.faults = DmsFaults()
    await driver.run_until(phase_is(P.READY))


async def test_a_dpu_without_a_configured_dms_waits_in_dms_deployment_saying_why(host: Host) -> None:
    host.deps.dms = StaticDmsProvider(lambda dpu: None)  # dpfd's config names no DMS for this PCI address
    driver = Driver(host.provisioner(), dpu_intent(host.bfb_url))
    report = await driver.run_until(lambda r: any(c.type == P.COND_DMS_RUNNING for c in r.conditions))
    assert report.phase == P.DMS_DEPLOYMENT
    assert condition(report, P.COND_DMS_RUNNING) == ("False", P.REASON_DMS_UNKNOWN)
    message = next(c.message for c in report.conditions if c.type == P.COND_DMS_RUNNING)
    assert "0000-03-00" in message and "provisioning.dms.targets" in message
    assert host.dms.state.installs == 0
