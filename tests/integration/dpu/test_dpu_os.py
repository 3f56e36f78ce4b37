"""The emulated BlueField boots a DPU OS after DMS activation: bf.cfg writes its root, a real dpfd (role dpu)
starts from it, registers in real etcd and runs the join; reboots and reflashes replace that dpfd."""

from __future__ import annotations

from pathlib import Path

import yaml

from dpfd.host.bfcfg import KubeadmJoin
from dpfd.host.dms import DmsClient
from dpfd.sim.bluefield.dpu_os import DpuOsOptions
from dpfd.sim.bluefield.status import collect
from dpfd.store import Store
from tests.integration.dpu.conftest import (
    FAKE_JOIN,
    StartBlueField,
    flash_dpu,
    kubeadm_calls,
    member,
    render_cfg,
)
from tests.waiting import eventually

DPU = "worker-1-0000-03-00"
BOOT = 60.0  # a DPU OS boot: bash writes the root, then python starts dpfd and it registers


async def test_flash_boots_a_dpu_dpfd_that_registers_and_joins(
    start_bluefield: StartBlueField,
    store: Store,
    etcd_endpoints: list[str],
    bfb: Path,
    recording_kubeadm: tuple[list[str], Path],
) -> None:
    kubeadm, calls = recording_kubeadm
    dms = await start_bluefield(DPU, kubeadm=kubeadm)
    join = KubeadmJoin.from_join_command(FAKE_JOIN, node_labels={"zone": "a"})
    await flash_dpu(dms, bfb, render_cfg(DPU, etcd_endpoints, join))

    registered = await eventually(lambda: member(store, DPU), within=BOOT, what=f"etcd member {DPU}")
    assert (registered["node"], registered["role"]) == (DPU, "dpu")
    assert dms.dpu_os is not None and registered["pid"] == dms.dpu_os.dpfd_pid
    # bf.cfg wrote the root; the emulator moved dpfd's state into it
    root = dms.dpu_os.root
    config = yaml.safe_load((root / "etc/dpf/dpfd.yaml").read_text())
    assert config["stateDir"] == str(root / "var/lib/dpfd")
    assert (root / "var/lib/cloud/seed/nocloud-net/user-data").exists()
    # the DPU's dpfd ran kubeadm join with a JoinConfiguration for this DPU
    [call] = await eventually(lambda: kubeadm_calls(calls), within=BOOT, what="kubeadm join")
    assert call["argv"][:2] == ["join", "--config"]
    joined = yaml.safe_load(call["config"])
    assert joined["nodeRegistration"] == {"name": DPU, "kubeletExtraArgs": {"node-labels": "zone=a"}}
    assert joined["discovery"]["bootstrapToken"]["apiServerEndpoint"] == "127.0.0.1:6443"
    await eventually(lambda: (root / "var/lib/dpfd/kubeadm/joined.json").exists(), within=BOOT, what="join marker")

    [row] = collect(dms.state_dir.parent)  # type: ignore[union-attr]
    assert (row["name"], row["installs"], row["activations"], row["reboots"]) == (DPU, 2, 1, 1)
    assert row["dpfd_running"] is True

    await dms.stop()
    assert dms.dpu_os.dpfd_pid is None and not _alive(registered["pid"])
    assert collect(dms.state_dir.parent)[0]["dpfd_running"] is False  # type: ignore[union-attr]
    await eventually(lambda: _no_member(store, DPU), within=15, what="member key removed at shutdown")


async def _no_member(store: Store, node: str) -> bool:
    return await member(store, node) is None


async def test_reflash_replaces_the_dpu_dpfd_and_its_root(
    start_bluefield: StartBlueField,
    store: Store,
    etcd_endpoints: list[str],
    bfb: Path,
    recording_kubeadm: tuple[list[str], Path],
) -> None:
    kubeadm, calls = recording_kubeadm
    dms = await start_bluefield(DPU, kubeadm=kubeadm)
    cfg = render_cfg(DPU, etcd_endpoints, KubeadmJoin.from_join_command(FAKE_JOIN))
    await flash_dpu(dms, bfb, cfg)
    first = await eventually(lambda: member(store, DPU), within=BOOT, what="first dpfd registered")
    await eventually(lambda: len(kubeadm_calls(calls)) == 1, within=BOOT, what="first join")
    assert dms.dpu_os is not None
    sentinel = dms.dpu_os.root / "home/ubuntu/notes.txt"
    sentinel.parent.mkdir(parents=True)
    sentinel.write_text("written on the running DPU\n")

    await flash_dpu(dms, bfb, cfg)

    second = await eventually(
        lambda: _member_other_than(store, DPU, first["pid"]), within=BOOT, what="a new dpfd registered"
    )
    assert second["role"] == "dpu"
    assert not _alive(first["pid"])  # the old DPU OS's dpfd was stopped
    assert not sentinel.exists()  # a reflash installs a fresh root
    await eventually(lambda: len(kubeadm_calls(calls)) == 2, within=BOOT, what="the reflashed DPU joins again")
    assert dms.stats()["dpu_os"]["boots"] == 2


async def test_plain_reboot_keeps_the_root_and_does_not_join_again(
    start_bluefield: StartBlueField,
    store: Store,
    etcd_endpoints: list[str],
    bfb: Path,
    recording_kubeadm: tuple[list[str], Path],
) -> None:
    kubeadm, calls = recording_kubeadm
    dms = await start_bluefield(DPU, kubeadm=kubeadm)
    await flash_dpu(dms, bfb, render_cfg(DPU, etcd_endpoints, KubeadmJoin.from_join_command(FAKE_JOIN)))
    first = await eventually(lambda: member(store, DPU), within=BOOT, what="dpfd registered")
    assert dms.dpu_os is not None
    marker = dms.dpu_os.root / "var/lib/dpfd/kubeadm/joined.json"
    await eventually(marker.exists, within=BOOT, what="join marker")

    assert dms.begin_reboot("test: plain reboot")  # as System.Reboot does
    async with DmsClient(dms.address, None, name=DPU) as client:
        await client.wait_reboot_done(poll=0.05, timeout=30)

    second = await eventually(
        lambda: _member_other_than(store, DPU, first["pid"]), within=BOOT, what="dpfd registered after the reboot"
    )
    assert second["role"] == "dpu" and not _alive(first["pid"])
    assert marker.exists()
    assert len(kubeadm_calls(calls)) == 1  # joined once; the restarted dpfd saw the marker
    stats = dms.stats()
    assert (stats["activations"], stats["reboots"], stats["dpu_os"]["boots"]) == (1, 2, 2)


async def test_without_dpu_os_a_flash_starts_nothing(
    start_bluefield: StartBlueField, store: Store, etcd_endpoints: list[str], bfb: Path
) -> None:
    dms = await start_bluefield(DPU, dpu_os=None)
    await flash_dpu(dms, bfb, render_cfg(DPU, etcd_endpoints, None))
    assert dms.dpu_os is None and dms.stats()["dpu_os"] is None
    assert dms.state_dir is not None and not (dms.state_dir / "root").exists()
    [row] = collect(dms.state_dir.parent)
    assert (row["activations"], row["dpu_os"], row["dpfd_running"]) == (1, None, False)
    assert await member(store, DPU) is None


async def test_a_bf_cfg_that_is_not_dpf_s_boots_without_dpfd(
    start_bluefield: StartBlueField, store: Store, bfb: Path
) -> None:
    dms = await start_bluefield(DPU)
    await flash_dpu(dms, bfb, b"#!/bin/bash\nBFB_VERSION=test\n")
    assert dms.dpu_os is not None
    assert dms.dpu_os.dpfd_pid is None
    assert dms.dpu_os.error == "bf.cfg worker-1-0000-03-00.cfg: bash exited with 3: bf.cfg defines no bfb_modify_os()"
    [row] = collect(dms.state_dir.parent)  # type: ignore[union-attr]
    assert row["dpu_os"]["error"] == dms.dpu_os.error and row["dpfd_running"] is False


async def _member_other_than(store: Store, node: str, pid: int) -> dict[str, object] | None:
    value = await member(store, node)
    return value if value is not None and value["pid"] != pid else None


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def test_join_only_runs_the_dpu_dpfds_join_without_a_dpfd_process(
    start_bluefield: StartBlueField,
    store: Store,
    etcd_endpoints: list[str],
    bfb: Path,
    recording_kubeadm: tuple[list[str], Path],
) -> None:
    kubeadm, calls = recording_kubeadm
    dms = await start_bluefield(DPU, dpu_os=DpuOsOptions(kubeadm=kubeadm, join_only=True))
    await flash_dpu(dms, bfb, render_cfg(DPU, etcd_endpoints, KubeadmJoin.from_join_command(FAKE_JOIN)))

    [call] = await eventually(lambda: kubeadm_calls(calls), within=BOOT, what="kubeadm join")
    assert yaml.safe_load(call["config"])["nodeRegistration"]["name"] == DPU
    assert dms.dpu_os is not None
    await eventually(lambda: (dms.dpu_os.root / "var/lib/dpfd/kubeadm/joined.json").exists(),  # type: ignore[union-attr]
                     within=BOOT, what="join marker")  # fmt: skip
    assert dms.dpu_os.dpfd_pid is None  # no dpfd process: nothing registers in etcd
    assert await member(store, DPU) is None
