"""The host sees its DPU's dpfd come back after the reboot over gossip, and moves the DPU on without waiting for DMS.

Real parts: the host dpfd process, the DPU's dpfd process (started by the emulated BlueField's OS from the bf.cfg the
host rendered: its dpfd.yaml, host, PCI address and gossip key came through bf.cfg), etcd, gossip, the BFB download,
DMS over gRPC, netlink in a network namespace. The emulated DMS is made to report the reboot as still active long
after the DPU is back (a fault knob), so only gossip can move the DPU past Rebooting in time. The host dpfd is also
killed (SIGKILL) while it waits for the reboot, and its successor picks the wait up.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpfd.config import parse_config, read_gossip_keys
from dpfd.host.provisioning import phases as P
from dpfd.host.provisioning.progress import Progress
from dpfd.sim.bfb_server import BfbServerConfig, BfbServerHandle, start_bfb_server
from dpfd.sim.bluefield.dms_server import DmsFaults, EmulatedDms
from dpfd.sim.bluefield.dpu_os import DpuOsOptions
from dpfd.sim.host_power import EmulatedHostPower
from dpfd.sim.ports import free_port
from dpfd.sim.sysfs import EmulatedSysfs
from dpfd.store import Store
from tests.integration.provisioning.dpfd_process import (
    NS,
    PCI,
    DpfdProcess,
    dpu_intent,
    host_config,
    put_intent,
    report,
)
from tests.integration.provisioning.host_netns import bridge_netns
from tests.waiting import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

NODE = "worker-9"
DPU = "worker-9-0000-03-00"
IMAGE = "bf-bundle-2.9"
STATUS_LAG = 600.0  # DMS says "still rebooting" for 10 minutes after the DPU is back


@pytest.fixture
def ns() -> Iterator[str]:
    with bridge_netns("dpf-gsp", "203.0.113.1", "203.0.113.254") as name:
        yield name


@pytest.fixture
async def bfbs() -> AsyncIterator[BfbServerHandle]:
    server = await start_bfb_server(config=BfbServerConfig(default_size=1 << 20))
    try:
        yield server
    finally:
        await server.close()


async def test_gossip_ends_the_wait_for_the_dpu_reboot_before_dms_does(
    tmp_path: Path, ns: str, store: Store, bfbs: BfbServerHandle, etcd_endpoints: list[str]
) -> None:
    sysfs = EmulatedSysfs(tmp_path / "sys")
    sysfs.add_bluefield(pci=PCI.replace("-", ":"), model="BF3", pf_names=("p0", "p1"), total_vfs=8)
    dms = EmulatedDms(f"127.0.0.1:{free_port()}", state_dir=tmp_path / "bluefield", reboot_seconds=3.0, name=DPU,
                      faults=DmsFaults(reboot_status_lag=STATUS_LAG), dpu_os=DpuOsOptions(stop_timeout=5.0))  # fmt: skip
    await dms.start()
    power_file = tmp_path / "host-power.json"
    EmulatedHostPower(power_file)
    key = os.urandom(32)
    key_file = tmp_path / "gossip.key"
    key_file.write_text(base64.b64encode(key).decode() + "\n")
    config = host_config(tmp_path / "host", NODE, etcd_endpoints, sysfs=tmp_path / "sys", netns=ns, dms=dms.address,
                         power_file=power_file)  # fmt: skip
    config["provisioning"]["dpuRebootTimeout"] = STATUS_LAG  # only gossip can end the wait within the test's time
    config["gossip"] = {"enabled": True, "bind": f"127.0.0.1:{free_port()}", "profile": "local",
                        "keyFile": str(key_file), "rejoinInterval": 0.5}  # fmt: skip
    host = DpfdProcess(tmp_path / "host", config)
    # No join command: the DPU's dpfd has no cluster to join here, only its gossip to do.
    intent = dpu_intent(NODE, DPU, bfbs.url_for(IMAGE), cluster={"name": "dpu-cplane", "namespace": NS})
    progress_file = tmp_path / "host" / "state" / "provisioning" / NS / f"{DPU}.json"
    try:
        await host.start()
        await put_intent(store, intent)
        await _phase(store, host, intent, P.REBOOTING, 60.0)
        # Killed while waiting for the reboot: the next process waits again, from what the progress says.
        await host.kill()
        await host.start()
        moved_on = await _phase(store, host, intent, P.HOST_NETWORK, 60.0)
        assert dms.reboot_active or dms.reboot_status().active, "DMS still says rebooting: it was not DMS"
        assert moved_on["details"]["dpuRebootedBy"] == "gossip", moved_on["details"]
        rebooted = next(c for c in moved_on["conditions"] if c["type"] == P.COND_REBOOTED)
        assert (rebooted["status"], rebooted["message"]) == ("True", "DPU back: its dpfd joined gossip")
        progress = Progress.model_validate_json(progress_file.read_text())
        assert (progress.dpu_rebooted, progress.dpu_rebooted_by) == (True, "gossip")
        assert progress.activated_at > 0
        assert "is back after its reboot (its dpfd joined gossip)" in host.log_path.read_text()  # the whole log
        assert (dms.state.activations, dms.state.reboots) == (1, 1)

        # What the host wrote through bf.cfg, as the DPU OS installed it: who the DPU belongs to, and the key.
        assert dms.dpu_os is not None
        root = dms.dpu_os.root
        dpu_config = parse_config((root / "etc/dpf/dpfd.yaml").read_text())
        assert dpu_config.dpu is not None
        assert (dpu_config.dpu.host_node, dpu_config.dpu.pci_address) == (NODE, PCI)
        assert (dpu_config.gossip.enabled, dpu_config.gossip.profile) == (True, "local")
        assert stat.S_IMODE((root / "etc/dpf/gossip.key").stat().st_mode) == 0o600
        assert read_gossip_keys(root / "etc/dpf/gossip.key") == [key]
        # The DPU's dpfd gossips from where the emulated OS put it, and says so in its member key.
        member = json.loads((await _kv(store, f"/dpf/v1/members/{DPU}")) or "{}")
        running = yaml.safe_load((root / "etc/dpf/dpfd.yaml").read_text())
        assert member.get("gossip") == running["gossip"]["bind"], member
        assert await host.terminate() == 0, host.log()
    finally:
        await host.cleanup()
        await dms.stop()


async def _phase(store: Store, host: DpfdProcess, intent: Any, phase: str, within: float) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        r = await report(store, NODE, intent.ref)
        return r if r is not None and r["phase"] == phase else None

    try:
        got: dict[str, Any] = await eventually(reached, within, f"DPU in {phase}", poll=0.05)
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- host dpfd log:\n{host.log(8000)}") from None
    return got


async def _kv(store: Store, key: str) -> bytes | None:
    kv = await store.get(key)
    return kv.value if kv is not None else None
