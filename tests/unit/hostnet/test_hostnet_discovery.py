"""Discovery of BlueFields from an emulated sysfs tree, and the Node labels DPF's detector would produce."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from pyroute2 import netns

from dpfd.host.discovery import Discovery, node_labels, scan, scan_pci
from dpfd.sim.sysfs import EmulatedSysfs

MISSING_NETNS = f"dpf-unit-absent-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def tree(tmp_path: Path) -> EmulatedSysfs:
    """A BF2 at 81:00 (one port), a BF3 at 03:00 (two ports), an Intel NIC and three broken entries."""
    sysfs = EmulatedSysfs(tmp_path / "sys")
    sysfs.add_bluefield("0000:81:00", model="BF2", pf_names=("ens5f0np0",), total_vfs=8)
    sysfs.add_bluefield("0000:03:00", model="BF3", pf_names=("ens1f0np0", "ens1f1np1"), total_vfs=16)
    sysfs.add_pci_function("0000:00:1f.6", vendor=0x8086, device=0x15BB)
    garbage = sysfs.add_pci_function("0000:00:02.0", vendor=0x8086, device=0x1234)
    (garbage / "vendor").write_text("not-a-vendor\n")
    no_device = sysfs.add_pci_function("0000:00:03.0", vendor=0x15B3, device=0xA2DC)
    (no_device / "device").unlink()
    (sysfs.root / "bus" / "pci" / "devices" / "junk").mkdir()
    return sysfs


def test_scan_finds_both_bluefields_by_pci_order(tree: EmulatedSysfs) -> None:
    problems: list[str] = []
    dpus = scan_pci(tree.root, problems)

    assert [(d.index, d.pci_address, d.model, d.device_id, d.pf0_name) for d in dpus] == [
        (0, "0000-03-00", "BF3", "0xa2dc", "ens1f0np0"),
        (1, "0000-81-00", "BF2", "0xa2d6", "ens5f0np0"),
    ]
    bf3, bf2 = dpus
    assert [(pf.address, pf.function, pf.netdev, pf.sriov_total_vfs, pf.sriov_num_vfs) for pf in bf3.pfs] == [
        ("0000:03:00.0", 0, "ens1f0np0", 16, 0),
        ("0000:03:00.1", 1, "ens1f1np1", 16, 0),
    ]
    assert [pf.address for pf in bf2.pfs] == ["0000:81:00.0"]
    assert bf3.pci_device == "0000:03:00"
    assert sorted(problems) == [
        "0000:00:02.0: vendor is not a PCI id like 0x15b3: 'not-a-vendor'",
        "0000:00:03.0: no device file",
        "junk: not a PCI function address (domain:bus:device.function)",
    ]


def test_scan_reports_a_missing_bridge_and_never_creates_the_netns(tree: EmulatedSysfs) -> None:
    found = scan(tree.root, bridge="br-dpu", netns=MISSING_NETNS)

    assert len(found.dpus) == 2
    assert not found.oob_bridge_configured
    assert found.bridge.problem == f"network namespace {MISSING_NETNS} does not exist"
    assert MISSING_NETNS not in netns.listnetns()


def test_labels_are_dpfs_exactly(tree: EmulatedSysfs) -> None:
    found = scan(tree.root, netns=MISSING_NETNS)

    assert node_labels(found) == {
        "feature.node.kubernetes.io/dpu-enabled": "true",
        "feature.node.kubernetes.io/dpu-0-pci-address": "0000-03-00",
        "feature.node.kubernetes.io/dpu-0-pf0-name": "ens1f0np0",
        "feature.node.kubernetes.io/dpu-1-pci-address": "0000-81-00",
        "feature.node.kubernetes.io/dpu-1-pf0-name": "ens5f0np0",
    }
    # DPF's detector writes the feature as `dpu-oob-bridge-configured=`: present (empty value) once the bridge is ready.
    configured = found.model_copy(update={"oob_bridge_configured": True})
    assert node_labels(configured)["feature.node.kubernetes.io/dpu-oob-bridge-configured"] == ""


def test_no_bluefield_no_labels(tmp_path: Path) -> None:
    sysfs = EmulatedSysfs(tmp_path / "sys")
    sysfs.add_pci_function("0000:00:1f.6", vendor=0x8086, device=0x15BB)

    found = scan(sysfs.root, netns=MISSING_NETNS)

    assert found.dpus == [] and found.problems == []
    assert node_labels(found) == {}


def test_discovery_round_trips_through_json(tree: EmulatedSysfs) -> None:
    found = scan(tree.root, netns=MISSING_NETNS)

    assert Discovery.model_validate_json(found.model_dump_json()) == found
    assert found.dpu("0000:81:00") == found.dpu("0000-81-00") == found.dpus[1]


def test_broken_bluefield_files_are_problems_not_crashes(tmp_path: Path) -> None:
    sysfs = EmulatedSysfs(tmp_path / "sys")
    pf0, _ = sysfs.add_bluefield("0000:03:00", model="BF3")
    (sysfs.function_dir(pf0) / "sriov_numvfs").write_text("lots\n")
    (sysfs.function_dir(pf0) / "sriov_totalvfs").unlink()
    # A BlueField whose PF0 is missing (only function 1 answers) cannot be numbered like DPF does: skipped.
    sysfs.add_pci_function("0000:05:00.1", vendor=0x15B3, device=0xA2D6)
    # A PF without a bound driver has no netdev: the DPU is found, without a pf0-name label.
    sysfs.add_pci_function("0000:07:00.0", vendor=0x15B3, device=0xA2D6)

    problems: list[str] = []
    dpus = scan_pci(sysfs.root, problems)

    assert [d.pci_address for d in dpus] == ["0000-03-00", "0000-07-00"]
    assert (dpus[0].pfs[0].sriov_num_vfs, dpus[0].pfs[0].sriov_total_vfs) == (None, None)
    assert dpus[1].pf0_name is None
    assert sorted(problems) == [
        "0000:03:00.0: no sriov_totalvfs file",
        "0000:03:00.0: sriov_numvfs is not a count: 'lots'",
        "0000:05:00: BlueField functions [1] found but no function 0 (PF0)",
        "0000:07:00.0: no netdev (no net/ directory)",
        "0000:07:00.0: no sriov_numvfs file",
        "0000:07:00.0: no sriov_totalvfs file",
    ]
    found = Discovery(
        dpus=dpus, bridge=scan(sysfs.root, netns=MISSING_NETNS).bridge, oob_bridge_configured=False, problems=problems
    )
    assert "feature.node.kubernetes.io/dpu-1-pf0-name" not in node_labels(found)
    assert node_labels(found)["feature.node.kubernetes.io/dpu-1-pci-address"] == "0000-07-00"


def test_emulated_layout_matches_the_kernels(tree: EmulatedSysfs) -> None:
    pf = tree.function_dir("0000:03:00.0")

    assert pf.is_symlink() and (pf / "vendor").read_text() == "0x15b3\n" and (pf / "device").read_text() == "0xa2dc\n"
    assert (tree.root / "class" / "net" / "ens1f0np0" / "device").resolve() == pf.resolve()
    assert (pf / "net" / "ens1f0np0").is_dir()
