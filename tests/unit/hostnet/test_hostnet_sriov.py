"""The sriov_numvfs state machine (0 -> N, N -> N, N -> M through 0) against the emulated kernel."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dpfd.host.hostnet import (
    SRIOV_ERROR_FILE,
    STEP_VFS,
    HostNetworkError,
    ensure_num_vfs,
    read_sriov_numvfs,
    write_sriov_numvfs,
)
from dpfd.sim.sysfs import EmulatedSysfs
from tests.waiting import eventually

PF0 = "0000:03:00.0"


@pytest.fixture
def sysfs(tmp_path: Path) -> EmulatedSysfs:
    tree = EmulatedSysfs(tmp_path / "sys")
    tree.add_bluefield("0000:03:00", model="BF3", total_vfs=16)
    return tree


@pytest.fixture
async def kernel(sysfs: EmulatedSysfs) -> AsyncIterator[EmulatedSysfs]:
    """The emulated kernel serving sriov_numvfs writes while the test runs."""
    task = asyncio.create_task(sysfs.serve_sriov(poll_interval=0.005))
    yield sysfs
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def virtfns(pf: Path) -> list[str]:
    return sorted((p.name for p in pf.iterdir() if p.name.startswith("virtfn")), key=lambda n: int(n[6:]))


async def test_zero_to_n_creates_vfs_with_netdevs(kernel: EmulatedSysfs) -> None:
    pf = kernel.function_dir(PF0)

    change = await ensure_num_vfs("0000-03-00", pf, 4, within=5)

    assert change == "0000:03:00.0 sriov_numvfs 0 -> 4"
    assert virtfns(pf) == ["virtfn0", "virtfn1", "virtfn2", "virtfn3"]
    assert os.readlink(pf / "virtfn0") == "../0000:03:00.2"
    assert [p.name for p in (pf / "virtfn0" / "net").iterdir()] == ["ens1f0v0"]
    assert (pf / "virtfn3" / "physfn").resolve() == pf.resolve()
    assert (pf / "virtfn0" / "device").read_text() == "0x101e\n"  # a VF: discovery does not count it as a DPU
    assert kernel.events == ["0000:03:00.0: 0 -> 4 VFs"]


async def test_n_to_n_writes_nothing(kernel: EmulatedSysfs) -> None:
    pf = kernel.function_dir(PF0)
    await ensure_num_vfs("0000-03-00", pf, 4, within=5)
    before = os.stat(pf / "sriov_numvfs")

    change = await ensure_num_vfs("0000-03-00", pf, 4, within=5)

    assert change is None
    after = os.stat(pf / "sriov_numvfs")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert kernel.events == ["0000:03:00.0: 0 -> 4 VFs"]


async def test_n_to_m_goes_through_zero(kernel: EmulatedSysfs) -> None:
    pf = kernel.function_dir(PF0)
    await ensure_num_vfs("0000-03-00", pf, 4, within=5)

    change = await ensure_num_vfs("0000-03-00", pf, 6, within=5)

    assert change == "0000:03:00.0 sriov_numvfs 4 -> 6 (through 0)"
    assert kernel.events == ["0000:03:00.0: 0 -> 4 VFs", "0000:03:00.0: 4 -> 0 VFs", "0000:03:00.0: 0 -> 6 VFs"]
    assert len(virtfns(pf)) == 6 and read_sriov_numvfs(pf / "sriov_numvfs") == 6
    assert not (pf / SRIOV_ERROR_FILE).exists()


async def test_n_to_zero(kernel: EmulatedSysfs) -> None:
    pf = kernel.function_dir(PF0)
    await ensure_num_vfs("0000-03-00", pf, 3, within=5)

    assert await ensure_num_vfs("0000-03-00", pf, 0, within=5) == "0000:03:00.0 sriov_numvfs 3 -> 0"
    assert virtfns(pf) == [] and not kernel.function_dir("0000:03:00.2").exists()
    assert not (kernel.root / "class" / "net" / "ens1f0v0").exists()


async def test_the_emulated_kernel_refuses_a_direct_change(sysfs: EmulatedSysfs) -> None:
    """What makes going through 0 necessary: writing M while N VFs exist is refused, and N stays."""
    pf = sysfs.function_dir(PF0)
    write_sriov_numvfs(pf / "sriov_numvfs", 4)
    await sysfs.apply_sriov_writes()

    write_sriov_numvfs(pf / "sriov_numvfs", 2)
    await sysfs.apply_sriov_writes()

    assert (pf / SRIOV_ERROR_FILE).read_text() == "EBUSY: 4 VFs already enabled. Disable before enabling 2 VFs\n"
    assert read_sriov_numvfs(pf / "sriov_numvfs") == 4 and len(virtfns(pf)) == 4

    write_sriov_numvfs(pf / "sriov_numvfs", 17)
    await sysfs.apply_sriov_writes()
    assert (pf / SRIOV_ERROR_FILE).read_text().startswith("ERANGE: 17 VFs requested, the device supports at most 16")


async def test_a_refusal_is_a_precise_error(kernel: EmulatedSysfs) -> None:
    """More VFs than the device has: hostnet writes, the kernel refuses, the error says which DPU, step and why."""
    pf = kernel.function_dir(PF0)

    with pytest.raises(HostNetworkError) as caught:
        await ensure_num_vfs("0000-03-00", pf, 20, within=5)

    assert caught.value.step == STEP_VFS
    assert str(caught.value) == (
        "DPU 0000-03-00: host network: set sriov_numvfs: writing 20 to 0000:03:00.0/sriov_numvfs was refused: "
        "ERANGE: 20 VFs requested, the device supports at most 16"
    )
    await eventually(lambda: read_sriov_numvfs(pf / "sriov_numvfs") == 0, within=5, what="the old count restored")
    assert virtfns(pf) == []


async def test_vfs_that_never_appear_time_out_with_the_reason(sysfs: EmulatedSysfs) -> None:
    """No kernel serving the write (a driver that never creates VFs): a clear timeout, not a hang."""
    pf = sysfs.function_dir(PF0)

    with pytest.raises(HostNetworkError, match=r"^DPU 0000-03-00: host network: set sriov_numvfs: 0000:03:00.0: "
                       r"the VF count did not reach 4 within 0.2s \(0 virtfn links\)$"):  # fmt: skip
        await ensure_num_vfs("0000-03-00", pf, 4, within=0.2)


async def test_emulator_resumes_from_the_tree(sysfs: EmulatedSysfs) -> None:
    """A restarted emulator over an existing tree takes the virtfn links as the current state."""
    pf = sysfs.function_dir(PF0)
    write_sriov_numvfs(pf / "sriov_numvfs", 2)
    await sysfs.apply_sriov_writes()

    again = EmulatedSysfs(sysfs.root)
    assert await again.apply_sriov_writes() == []
    write_sriov_numvfs(pf / "sriov_numvfs", 0)
    assert await again.apply_sriov_writes() == ["0000:03:00.0: 2 -> 0 VFs"]
    assert virtfns(pf) == []


def test_write_never_creates_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_sriov_numvfs(tmp_path / "sriov_numvfs", 4)
    assert not (tmp_path / "sriov_numvfs").exists()
