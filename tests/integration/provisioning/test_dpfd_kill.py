"""kill -9 of a real host dpfd in every phase: it resumes where it was, and the DPU is flashed exactly once.

Real parts: the dpfd process, etcd, the BFB download over HTTP, the DMS over gRPC, netlink in a network namespace
with br-dpu. Emulated: the BlueField (its sysfs tree and DMS) and the host's power. The test plays the controller:
it writes the DPU intent into etcd, and later says the DPU's Node is Ready in its cluster.

Each phase is made to last long enough to be caught: the BFB server sends slowly (Pending), the DMS is not up yet
(DMS Deployment), the DMS installs slowly (OS Installing) and reboots slowly (Rebooting), the kernel's side of
sriov_numvfs is not running yet (Host Network Configuration), the Node is not Ready (DPU Cluster Config).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dpfd_process import DpfdProcess, dpu_intent, host_config, put_intent, report
from host_netns import bridge_netns

from dpfd.host.provisioning import phases as P
from dpfd.sim.bfb_server import BfbServerConfig, BfbServerHandle, Fault, start_bfb_server
from dpfd.sim.bluefield.dms_server import EmulatedDms
from dpfd.sim.host_power import EmulatedHostPower
from dpfd.sim.ports import free_port
from dpfd.sim.sysfs import EmulatedSysfs, VethVfNetdevs
from dpfd.store import Store, keys
from tests.waiting import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

NODE = "worker-7"
DPU = "worker-7-0000-03-00"
IMAGE = "bf-bundle-2.9"
IMAGE_BYTES = 4 << 20


@pytest.fixture
def ns() -> Iterator[str]:
    with bridge_netns("dpf-kill", "203.0.113.1", "203.0.113.254") as name:
        yield name


@pytest.fixture
async def bfbs() -> AsyncIterator[BfbServerHandle]:
    server = await start_bfb_server(config=BfbServerConfig(default_size=IMAGE_BYTES))
    try:
        yield server
    finally:
        await server.close()


async def wait_report(
    store: Store, ref_name: str, ok: Callable[[dict[str, Any]], bool], within: float, what: str
) -> dict[str, Any]:
    intent_ref = dpu_intent(NODE, ref_name, "http://x/y.bfb").ref
    got: dict[str, Any] = await eventually(
        lambda: _matching(store, intent_ref, ok), within, what, poll=0.02
    )  # fmt: skip
    return got


async def _matching(store: Store, ref: Any, ok: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    r = await report(store, NODE, ref)
    return r if r is not None and ok(r) else None


def in_phase(phase: str, token: int, also: Callable[[], bool] = lambda: True) -> Callable[[dict[str, Any]], bool]:
    """The report of the current process (its fencing token) shows `phase`, and `also` holds."""
    return lambda r: r["phase"] == phase and r["fencingToken"] == token and also()


async def test_kill_9_in_every_phase_resumes_and_flashes_exactly_once(
    tmp_path: Path, ns: str, store: Store, bfbs: BfbServerHandle, etcd_endpoints: list[str]
) -> None:
    sysfs = EmulatedSysfs(tmp_path / "sys")
    sysfs.add_bluefield(pci="0000:03:00", model="BF3", pf_names=("ens1f0np0", "ens1f1np1"), total_vfs=16)
    dms_port = free_port()
    dms = EmulatedDms(f"127.0.0.1:{dms_port}", state_dir=tmp_path / "dms", install_bytes_per_s=2 << 20,
                      reboot_seconds=2.0, name=DPU)  # fmt: skip
    power_file = tmp_path / "host-power.json"
    EmulatedHostPower(power_file)  # the host has been up for a day
    config = host_config(tmp_path / "host", NODE, etcd_endpoints, sysfs=tmp_path / "sys", netns=ns,
                         dms=dms.address, power_file=power_file)  # fmt: skip
    dpfd = DpfdProcess(tmp_path / "host", config)
    bfbs.config.faults[IMAGE] = Fault(rate=1 << 20)  # 4 s for the image: Pending lasts
    intent = dpu_intent(NODE, DPU, bfbs.url_for(IMAGE))
    await put_intent(store, intent)
    sriov: asyncio.Task[None] | None = None
    kills: list[str] = []

    async def run_until(phase: str, also: Callable[[], bool] = lambda: True, within: float = 40.0) -> int:
        await dpfd.start()
        token = await dpfd.token(store)
        try:
            await wait_report(store, DPU, in_phase(phase, token, also), within, f"{phase} under token {token}")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- dpfd log:\n{dpfd.log()}") from None
        return token

    async def kill_in(phase: str, also: Callable[[], bool] = lambda: True) -> None:
        await run_until(phase, also)
        await dpfd.kill()
        kills.append(phase)

    try:
        # Pending: mid-download (some bytes sent, not all).
        await kill_in(P.PENDING, lambda: 0 < bfbs.server.bytes_sent(IMAGE) < IMAGE_BYTES)
        bfbs.config.faults.pop(IMAGE)
        # DMS Deployment: the DMS does not answer yet.
        await kill_in(P.DMS_DEPLOYMENT)
        await dms.start()
        # OS Installing: mid-transfer of the BFB into the DMS.
        await kill_in(P.OS_INSTALLING, lambda: dms.installing)
        await eventually(lambda: not dms.installing, 10.0, "the DMS noticed its client died")
        assert dms.state.installs == 0, "a transfer cut short must not count as an install"
        # Rebooting: the DPU reboots after Activate.
        await kill_in(P.REBOOTING)
        # Host Network Configuration: sriov_numvfs written, the "kernel" has not made the VFs yet.
        await kill_in(P.HOST_NETWORK)
        sriov = asyncio.create_task(sysfs.serve_sriov(vf_netdevs=VethVfNetdevs(ns)))
        # DPU Cluster Config: waiting for the DPU's Node to be Ready in its cluster.
        await kill_in(P.CLUSTER_CONFIG)

        token = await run_until(P.CLUSTER_CONFIG)
        ready_node = intent.model_copy(update={"context": {**intent.context, "clusterNodeReady": True}})
        await put_intent(store, ready_node)
        ready = await wait_report(store, DPU, in_phase(P.READY, token), 30.0, "Ready")
        assert await dpfd.terminate() == 0, dpfd.log()
    finally:
        if sriov is not None:
            sriov.cancel()
        await dpfd.cleanup()
        await dms.stop()

    assert kills == [P.PENDING, P.DMS_DEPLOYMENT, P.OS_INSTALLING, P.REBOOTING, P.HOST_NETWORK, P.CLUSTER_CONFIG]
    state = dms.state
    bfb_installs = [v for v, image in state.installed.items() if image.kind == "bfb"]
    assert bfb_installs == ["bf-bundle-2.9.bfb"]
    # Exactly one install of the BFB and one of its bf.cfg, one activation, one DPU reboot, one host reboot.
    assert (state.installs, state.activations, state.reboots) == (2, 1, 1), state
    assert state.running_version == "bf-bundle-2.9.bfb"
    assert EmulatedHostPower(power_file).reboots == {"reset": 1}
    assert all(c["status"] == "True" for c in ready["conditions"]), ready["conditions"]
    assert ready["details"]["lock"]["name"] == f"dpu.{intent.ref.namespace}.{DPU}"
    # The download was resumed after the kill, not started over.
    assert bfbs.server.bytes_sent(IMAGE) < 1.5 * IMAGE_BYTES, bfbs.server.bytes_sent(IMAGE)
    assert await store.get(keys.lock_key(f"dpu.{intent.ref.namespace}.{DPU}")) is None, "lock left after SIGTERM"


async def test_a_second_dpfd_for_the_same_node_cannot_flash_the_dpu(
    tmp_path: Path, ns: str, store: Store, bfbs: BfbServerHandle, etcd_endpoints: list[str]
) -> None:
    sysfs = EmulatedSysfs(tmp_path / "sys")
    sysfs.add_bluefield(pci="0000:03:00", model="BF3", pf_names=("ens1f0np0", "ens1f1np1"), total_vfs=16)
    sriov = asyncio.create_task(sysfs.serve_sriov(vf_netdevs=VethVfNetdevs(ns)))
    dms = EmulatedDms("127.0.0.1:0", state_dir=tmp_path / "dms", install_bytes_per_s=4 << 20, reboot_seconds=0.5)
    await dms.start()
    power_file = tmp_path / "host-power.json"
    EmulatedHostPower(power_file)
    # Two processes that both think they are the node (a copy started by mistake), each with its own state.
    dpfds = [
        DpfdProcess(
            tmp_path / name,
            host_config(
                tmp_path / name,
                NODE,
                etcd_endpoints,
                sysfs=tmp_path / "sys",
                netns=ns,
                dms=dms.address,
                power_file=power_file,
            ),
        )
        for name in ("first", "second")
    ]
    intent = dpu_intent(NODE, DPU, bfbs.url_for(IMAGE), clusterNodeReady=True)
    try:
        await asyncio.gather(*(d.start() for d in dpfds))
        await put_intent(store, intent)
        ready = await wait_report(store, DPU, lambda r: r["phase"] == P.READY, 40.0, "Ready")
        # The other one got as far as asking for the lock, and was told to wait.
        await eventually(lambda: any("is locked by" in d.log() for d in dpfds), 10.0, "a dpfd waiting for the lock")
        [loser] = [d for d in dpfds if "is locked by" in d.log()]
        [winner] = [d for d in dpfds if d is not loser]
        assert loser.proc is not None and winner.proc is not None
        assert f"pid {winner.proc.pid}" in loser.log(), loser.log()
        assert ready["details"]["lock"]["token"] > 0
        # Stop the waiting one first: once the winner's session ends, the lock would pass to it.
        assert await loser.terminate() == 0, loser.log()
        assert await winner.terminate() == 0, winner.log()
    finally:
        sriov.cancel()
        for d in dpfds:
            await d.cleanup()
        await dms.stop()
    state = dms.state
    assert (state.installs, state.activations, state.reboots) == (2, 1, 1), state
    assert EmulatedHostPower(power_file).reboots == {"reset": 1}
    # The loser never got past the local checks of Initializing.
    progress = loser.home / "state" / "provisioning" / intent.ref.namespace / f"{DPU}.json"
    assert not progress.exists() or '"phase": "Initializing"' in progress.read_text(), progress.read_text()
