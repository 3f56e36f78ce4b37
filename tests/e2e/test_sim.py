"""dpf-sim end to end: `up` on the example manifests, the real kubectl sees the DPUs DPF would create, `down`."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.1)


def _kubectl(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=30)  # fmt: skip


def _expected_dpus() -> set[str]:
    names = set()
    for f in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            labels = (doc or {}).get("metadata", {}).get("labels", {}) or {}
            if doc and doc.get("kind") == "Node" and labels.get("feature.node.kubernetes.io/dpu-enabled") == "true":
                pci = labels["feature.node.kubernetes.io/dpu-0-pci-address"]
                names.add(f"{doc['metadata']['name'].lower()}-{pci}")
    return names


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    state = tmp_path / "sim"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpfd.sim.cli", "up", "--manifests", str(EXAMPLES), "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        yield state, proc
    finally:
        if proc.poll() is None:
            subprocess.run([sys.executable, "-m", "dpfd.sim.cli", "down", "--state-dir", str(state)],
                           timeout=60, check=False)  # fmt: skip
            proc.wait(30)


def test_up_shows_dpus_picked_up_by_their_host_dpfd_then_down_stops_everything(
    sim: tuple[Path, subprocess.Popen[str]],
) -> None:
    state, proc = sim
    kubeconfig = state / "host.kubeconfig"
    expected = _expected_dpus()
    assert expected, "docs/examples should hold DPU-labelled Nodes"

    def dpus_initializing() -> dict[str, Any] | None:
        if proc.poll() is not None:
            raise AssertionError(f"dpf-sim up exited {proc.returncode}:\n{proc.stdout.read() if proc.stdout else ''}")
        if not kubeconfig.exists():
            return None
        out = _kubectl(kubeconfig, "get", "dpus", "-A", "-o", "json")
        if out.returncode != 0:
            return None
        items = {i["metadata"]["name"]: i for i in json.loads(out.stdout)["items"]}
        if set(items) == expected and all(i.get("status", {}).get("phase") == "Initializing" for i in items.values()):
            return items
        return None

    items = _wait(dpus_initializing, 90, f"DPUs {sorted(expected)} in phase Initializing")
    for name, dpu in items.items():
        labels = dpu["metadata"]["labels"]
        assert labels["provisioning.dpu.nvidia.com/dpuset-name"]
        assert name.startswith(dpu["spec"]["nodeName"].lower() + "-")
        assert dpu["metadata"]["ownerReferences"][0]["kind"] == "DPUSet"
        assert dpu["status"]["observedGeneration"] == dpu["metadata"]["generation"]

    # Each DPUCluster has an emulated API behind the admin kubeconfig Secret it names, and kubectl reaches it.
    for cluster in json.loads(_kubectl(kubeconfig, "get", "dpuclusters", "-A", "-o", "json").stdout)["items"]:
        ns, secret_name = cluster["metadata"]["namespace"], cluster["spec"]["kubeconfig"]
        secret = json.loads(_kubectl(kubeconfig, "get", "secret", "-n", ns, secret_name, "-o", "json").stdout)
        dpu_kubeconfig = state / f"{secret_name}.admin.conf"
        dpu_kubeconfig.write_bytes(base64.b64decode(secret["data"]["admin.conf"]))
        namespaces = _kubectl(dpu_kubeconfig, "get", "namespaces", "-o", "name")
        assert namespaces.returncode == 0 and "namespace/default" in namespaces.stdout, namespaces.stderr

    table = _kubectl(kubeconfig, "get", "dpus", "-A")
    assert table.returncode == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert {"NAMESPACE", "NAME", "PHASE"} <= set(header), table.stdout
    assert table.stdout.count("Initializing") == len(expected)

    children = json.loads((state / "processes.json").read_text())["children"]
    pids = [c["pid"] for c in children]
    down = subprocess.run([sys.executable, "-m", "dpfd.sim.cli", "down", "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=90)  # fmt: skip
    assert down.returncode == 0, down.stderr
    proc.wait(30)
    assert proc.returncode == 0
    for pid in pids:
        assert not _alive(pid), f"pid {pid} still running after down"
    assert not (state / "processes.json").exists()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_up_refuses_invalid_manifests_and_starts_nothing(tmp_path: Path) -> None:
    manifests = tmp_path / "bad"
    manifests.mkdir()
    (manifests / "bfb.yaml").write_text(
        "apiVersion: provisioning.dpu.nvidia.com/v1alpha1\nkind: BFB\n"
        "metadata: {name: bad, namespace: dpf-operator-system}\nspec: {url: 'ftp://example.com/x.iso'}\n"
    )
    state = tmp_path / "state"
    out = subprocess.run(
        [sys.executable, "-m", "dpfd.sim.cli", "up", "--manifests", str(manifests), "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
    )  # fmt: skip
    assert out.returncode == 1
    assert "BFB dpf-operator-system/bad: spec.url" in out.stderr
    assert not (state / "processes.json").exists()


def test_ctrl_c_stops_everything_up_started(tmp_path: Path) -> None:
    state = tmp_path / "sim"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dpfd.sim.cli", "up", "--manifests", str(EXAMPLES), "--state-dir", str(state)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the banner comes once every process has started
            if " up. Try: " in line:
                break
        else:
            raise AssertionError(f"dpf-sim up exited {proc.wait()} before it was up")
        pids = [c["pid"] for c in json.loads((state / "processes.json").read_text())["children"]]
        assert len(pids) >= 6  # etcd, two APIs, the controller, three host dpfds
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, rest
        assert "stopped and cleaned up." in rest
        assert [pid for pid in pids if _alive(pid)] == []
        assert not (state / "processes.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run([sys.executable, "-m", "dpfd.sim.cli", "down", "--state-dir", str(state)], timeout=60)
