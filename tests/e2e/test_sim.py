"""dpf-sim end to end: `up` on the example manifests provisions every DPU (flash, DPU OS, join) until the real
kubectl shows it Ready; the emulated hardware, the DPU cluster and the host Nodes agree; `down` stops it all."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dpfd.sim.ports import free_port
from tests.e2e.simfleet import (
    DPU_ENABLED,
    OOB_BRIDGE,
    PCI_ADDRESS,
    PF0_NAME,
    ROOT,
    Sim,
    alive,
    example_docs,
    is_ready,
    kubectl,
    kubectl_json,
    netns_names,
    wait_for,
    with_bfb_port,
    write_manifests,
)

FLASH_SECONDS = 2.0


def _expected_dpus(docs: list[dict[str, Any]]) -> dict[str, str]:
    """DPU name -> host Node, for DPU 0 of every dpu-enabled Node (as the examples' DPUSet selects them)."""
    names = {}
    for doc in docs:
        labels = doc.get("metadata", {}).get("labels") or {}
        if doc.get("kind") == "Node" and labels.get(DPU_ENABLED) == "true":
            names[f"{doc['metadata']['name'].lower()}-{labels[PCI_ADDRESS]}"] = doc["metadata"]["name"]
    return names


def _without_discovered_labels(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Nodes lose the labels only DPF's discovery can know (PF0's netdev, the OOB bridge being ready): the
    host dpfds must put them back. The PCI address stays, since it tells dpf-sim which BlueFields to emulate."""
    for doc in docs:
        if doc.get("kind") == "Node":
            for key in (PF0_NAME, OOB_BRIDGE):
                doc["metadata"]["labels"].pop(key, None)
    return docs


@pytest.fixture
def examples_sim(tmp_path: Path) -> Iterator[tuple[Sim, list[dict[str, Any]]]]:
    port = free_port()
    docs = with_bfb_port(example_docs(), port)
    manifests = write_manifests(tmp_path / "manifests", _without_discovered_labels(docs))
    sim = Sim(tmp_path / "sim", manifests, port, FLASH_SECONDS)
    sim.start()
    try:
        yield sim, docs
    finally:
        sim.cleanup()


def test_up_provisions_every_dpu_until_ready_and_joined_then_down_stops_everything(
    examples_sim: tuple[Sim, list[dict[str, Any]]],
) -> None:
    sim, docs = examples_sim
    expected = _expected_dpus(docs)
    assert len(expected) == 3, "docs/examples should hold three DPU-labelled Nodes"
    (dpuset,) = [d for d in docs if d["kind"] == "DPUSet"]
    node_labels = dpuset["spec"]["dpuTemplate"]["spec"]["cluster"]["nodeLabels"]
    (bfb,) = [d for d in docs if d["kind"] == "BFB"]
    bfb_file = f"{bfb['metadata']['namespace']}-{bfb['metadata']['name']}.bfb"
    info = sim.wait_up()

    def all_ready() -> dict[str, dict[str, Any]] | None:
        sim.check_running()
        dpus = sim.dpus()
        return dpus if set(dpus) == set(expected) and all(is_ready(d) for d in dpus.values()) else None

    def phases() -> dict[str, str]:
        return {n: (d.get("status") or {}).get("phase", "-") for n, d in sim.dpus().items()}

    try:
        dpus = wait_for(all_ready, 150, f"DPUs {sorted(expected)} in phase Ready")
    except AssertionError as e:
        raise AssertionError(f"{e}\nphases now: {phases()}\n{sim.output()[-3000:]}") from None
    for name, dpu in dpus.items():
        assert dpu["spec"]["nodeName"] == expected[name], f"DPU {name}: spec.nodeName"
        assert dpu["metadata"]["labels"]["provisioning.dpu.nvidia.com/dpuset-name"] == dpuset["metadata"]["name"]
        assert dpu["metadata"]["ownerReferences"][0]["kind"] == "DPUSet", f"DPU {name}: ownerReferences"
        assert dpu["status"]["observedGeneration"] == dpu["metadata"]["generation"], f"DPU {name}: observedGeneration"

    # The table kubectl prints (the CRD's printer columns) says the same.
    table = kubectl(sim.kubeconfig, "get", "dpus", "-A")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    columns = header.split()
    assert {"NAME", "READY", "PHASE"} <= set(columns), table.stdout
    shown = {r.split()[columns.index("NAME")]: r.split() for r in rows}
    assert set(shown) == set(expected), table.stdout
    for cells in shown.values():
        assert cells[columns.index("READY")] == "True" and cells[columns.index("PHASE")] == "Ready", table.stdout

    # Each emulated BlueField was activated once with the BFB, and its DPU OS runs dpfd.
    status = {row["name"]: row for row in sim.status()}
    assert set(status) == set(expected), f"dpf-sim status lists {sorted(status)}"
    for name, row in status.items():
        assert row["activations"] == 1, f"BlueField {name}: activations {row['activations']}, want exactly 1"
        assert row["running_version"] == bfb_file, f"BlueField {name}: running_version {row['running_version']}"
        assert row["mode"] == "DPU", f"BlueField {name}: mode {row['mode']}"
        assert row["dpfd_running"], f"BlueField {name}: its dpfd does not run: {row['dpu_os']}"

    # The DPU cluster has a Ready Node per DPU, labelled with the DPUSet's nodeLabels; its admin kubeconfig
    # (the Secret the DPUCluster names) reaches it too.
    (cluster_info,) = info["dpuClusters"].values()
    nodes = {n["metadata"]["name"]: n for n in kubectl_json(cluster_info["kubeconfig"], "get", "nodes")["items"]}
    assert set(nodes) == set(expected), f"DPU cluster Nodes {sorted(nodes)}"
    for name, node in nodes.items():
        ready = [c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"]
        assert ready == ["True"], f"DPU cluster Node {name}: Ready condition {ready}"
        labels = node["metadata"]["labels"]
        for key, value in node_labels.items():
            assert labels.get(key) == value, f"DPU cluster Node {name}: label {key}={labels.get(key)!r}, want {value!r}"
        assert labels.get("provisioning.dpu.nvidia.com/host") == expected[name], f"Node {name}: host label"
    (cluster,) = [d for d in docs if d["kind"] == "DPUCluster"]
    ns = cluster["metadata"]["namespace"]
    secret = kubectl_json(sim.kubeconfig, "get", "secret", "-n", ns, cluster["spec"]["kubeconfig"])
    admin = sim.state / "admin.conf"
    admin.write_bytes(base64.b64decode(secret["data"]["admin.conf"]))
    via_secret = kubectl(admin, "get", "nodes", "-o", "name")
    assert via_secret.returncode == 0 and via_secret.stdout.count("node/") == len(expected), via_secret.stderr

    # The host Nodes carry DPF's discovery labels again, written from what each host dpfd found.
    def discovered() -> dict[str, dict[str, str]] | None:
        hosts = {
            n["metadata"]["name"]: n["metadata"]["labels"]
            for n in kubectl_json(sim.kubeconfig, "get", "nodes")["items"]
        }
        return hosts if all(PF0_NAME in hosts.get(h, {}) for h in expected.values()) else None

    hosts = wait_for(discovered, 30, f"label {PF0_NAME} on the host Nodes")
    for host in expected.values():
        labels = hosts[host]
        assert labels.get(DPU_ENABLED) == "true", f"Node {host}: {DPU_ENABLED}={labels.get(DPU_ENABLED)!r}"
        assert labels.get(PCI_ADDRESS) == "0000-03-00", f"Node {host}: {PCI_ADDRESS}={labels.get(PCI_ADDRESS)!r}"
        assert labels.get(PF0_NAME) == "p0", f"Node {host}: {PF0_NAME}={labels.get(PF0_NAME)!r}"
        assert labels.get(OOB_BRIDGE) == "", f"Node {host}: {OOB_BRIDGE} is {labels.get(OOB_BRIDGE)!r}, want ''"

    # Nothing flashed twice while we looked.
    assert [r["activations"] for r in sim.status()] == [1] * len(expected)

    # The controller is a gossip member too: it sees every DPU's dpfd and every host's dpfd alive...
    def reachability(dpu: dict[str, Any]) -> dict[str, tuple[str, str]]:
        conds = (dpu.get("status") or {}).get("conditions") or []
        return {c["type"]: (c["status"], c["reason"]) for c in conds if c["type"].endswith("DaemonReachable")}

    up = {"DPUDaemonReachable": ("True", "MemberAlive"), "HostDaemonReachable": ("True", "MemberAlive")}
    wait_for(lambda: all(reachability(d) == up for d in sim.dpus().values()) or None, 30,
             "DPUDaemonReachable and HostDaemonReachable True on every DPU")  # fmt: skip
    # ...and a DPU whose dpfd dies says so within seconds, while the others stay as they are.
    victim = sorted(expected)[0]
    os.kill(status[victim]["dpu_os"]["dpfd_pid"], signal.SIGKILL)
    wait_for(lambda: reachability(sim.dpus()[victim]).get("DPUDaemonReachable") == ("False", "MemberFailed") or None,
             20, f"DPUDaemonReachable False on {victim} after its dpfd was killed")  # fmt: skip
    assert all(reachability(d) == up for n, d in sim.dpus().items() if n != victim)

    # `down` stops every process (the DPUs' dpfds too) and removes the hosts' network namespaces.
    namespaces = sim.netns(len(expected))
    assert namespaces <= netns_names(), f"namespaces {sorted(namespaces - netns_names())} missing while up"
    children = json.loads((sim.state / "processes.json").read_text())["children"]
    pids = [c["pid"] for c in children] + [r["dpu_os"]["dpfd_pid"] for r in status.values()]
    down = sim.down()
    assert down.returncode == 0, down.stderr
    assert sim.proc is not None and sim.proc.returncode == 0, sim.output()[-3000:]
    assert [pid for pid in pids if alive(pid)] == [], "still running after down"
    assert not (sim.state / "processes.json").exists()
    assert namespaces & netns_names() == set(), f"namespaces left after down: {sorted(namespaces & netns_names())}"


def test_up_refuses_invalid_manifests_and_starts_nothing(tmp_path: Path) -> None:
    manifests = tmp_path / "bad"
    manifests.mkdir()
    (manifests / "bfb.yaml").write_text(
        "apiVersion: provisioning.dpu.nvidia.com/v1alpha1\nkind: BFB\n"
        "metadata: {name: bad, namespace: dpf-operator-system}\nspec: {url: 'ftp://example.com/x.iso'}\n"
    )
    state = tmp_path / "state"
    out = subprocess.run(
        [sys.executable, "-m", "dpfd.sim.cli", "up", "--manifests", str(manifests), "--state-dir", str(state),
         "--bfb-port", str(free_port())],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 1
    assert "BFB dpf-operator-system/bad: spec.url" in out.stderr
    assert not (state / "processes.json").exists()


def test_ctrl_c_stops_everything_up_started(examples_sim: tuple[Sim, list[dict[str, Any]]]) -> None:
    sim, _ = examples_sim
    sim.wait_up()
    pids = [c["pid"] for c in json.loads((sim.state / "processes.json").read_text())["children"]]
    # etcd, the BFB server, two APIs, the rack, the controller, three host dpfds
    assert len(pids) >= 9, pids
    namespaces = sim.netns(3)
    assert namespaces <= netns_names()
    assert sim.proc is not None
    sim.proc.send_signal(signal.SIGINT)
    sim.proc.wait(60)
    assert sim.proc.returncode == 0, sim.output()[-3000:]
    assert "stopped and cleaned up." in sim.output()
    assert [pid for pid in pids if alive(pid)] == []
    assert not (sim.state / "processes.json").exists()
    assert namespaces & netns_names() == set()
