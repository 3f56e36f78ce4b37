"""From manifests' Nodes to the rack's hardware plan."""

from __future__ import annotations

from pathlib import Path

from dpfd.sim.rack_plan import FlashTiming, rack_plan


def _node(name: str, labels: dict[str, str], ip: str | None = None) -> dict[str, object]:
    node: dict[str, object] = {"metadata": {"name": name, "labels": labels}}
    if ip:
        node["status"] = {"addresses": [{"type": "InternalIP", "address": ip}]}
    return node


def test_every_dpu_label_of_a_dpu_enabled_node_becomes_a_bluefield(tmp_path: Path) -> None:
    nodes = [
        _node(
            "Worker-1",
            {
                "feature.node.kubernetes.io/dpu-enabled": "true",
                "feature.node.kubernetes.io/dpu-0-pci-address": "0000-03-00",
                "feature.node.kubernetes.io/dpu-0-pf0-name": "ens1f0np0",
                "feature.node.kubernetes.io/dpu-1-pci-address": "0000-81-00",
            },
            ip="198.51.100.11",
        ),
        _node("plain", {"kubernetes.io/hostname": "plain"}),
    ]
    plan = rack_plan(nodes, tmp_path, FlashTiming(flash_seconds=5.0, bfb_bytes=8 << 20))
    assert [h.node for h in plan.hosts] == ["Worker-1"]
    host = plan.hosts[0]
    assert host.bridge_address == "198.51.100.11/24" and host.gateway == "198.51.100.254"
    assert [(d.name, d.pci, d.pf_names) for d in host.dpus] == [
        ("worker-1-0000-03-00", "0000:03:00", ("ens1f0np0", "ens1f0np1")),
        ("worker-1-0000-81-00", "0000:81:00", ("p2", "p3")),
    ]
    assert len({d.dms_port for d in host.dpus}) == 2
    # 80 % of the flash streams the image, 20 % is the DPU's reboot.
    assert plan.install_bytes_per_s == (8 << 20) / 4.0
    assert abs(plan.reboot_seconds - 1.0) < 1e-9


def test_namespaces_differ_between_state_dirs(tmp_path: Path) -> None:
    nodes = [_node("w", {"feature.node.kubernetes.io/dpu-enabled": "true"})]
    a = rack_plan(nodes, tmp_path / "a", FlashTiming(1.0, 1 << 20)).hosts[0]
    b = rack_plan(nodes, tmp_path / "b", FlashTiming(1.0, 1 << 20)).hosts[0]
    assert a.netns != b.netns
    assert a.bridge_address.startswith("198.51.100.")
