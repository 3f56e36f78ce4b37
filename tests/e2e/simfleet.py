"""Running `dpf-sim up` from end-to-end tests: manifests with the BFB URLs on a free port, the process, its
state dir (sim.json, status), kubectl against the emulated APIs, and `down`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dpfd.sim.rack_plan import netns_name

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
EXAMPLE_BFB_PORT = 18080  # what docs/examples' BFB URL names
DPU_ENABLED = "feature.node.kubernetes.io/dpu-enabled"
OOB_BRIDGE = "feature.node.kubernetes.io/dpu-oob-bridge-configured"
PF0_NAME = "feature.node.kubernetes.io/dpu-0-pf0-name"
PCI_ADDRESS = "feature.node.kubernetes.io/dpu-0-pci-address"

T = TypeVar("T")


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, poll: float = 0.2) -> T:
    """Call `predicate` until it returns something truthy and return that; fail naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    value: T | None = None
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last value: {value!r})")
        time.sleep(poll)


def example_docs() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for f in sorted(EXAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(f.read_text()) if d]
    return docs


def kamaji_dpucluster() -> dict[str, Any]:
    """docs/examples/kamaji's DPUCluster: the examples' DPU cluster (same name) as type kamaji."""
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / "kamaji" / "03-dpucluster.yaml").read_text())
    return doc


def bfb_url(port: int, name: str) -> str:
    return f"http://127.0.0.1:{port}/{name}.bfb"


def with_bfb_port(docs: Iterable[dict[str, Any]], port: int) -> list[dict[str, Any]]:
    """The documents with every BFB URL moved from the examples' port to `port`."""
    out = []
    for doc in docs:
        doc = json.loads(json.dumps(doc))
        if doc.get("kind") == "BFB":
            doc["spec"]["url"] = doc["spec"]["url"].replace(f":{EXAMPLE_BFB_PORT}/", f":{port}/")
            assert f":{port}/" in doc["spec"]["url"], f"BFB {doc['metadata']['name']}: unexpected url"
        out.append(doc)
    return out


def write_manifests(folder: Path, docs: Iterable[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifests.yaml").write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    return folder


def kubectl(kubeconfig: Path | str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig), *args],
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def kubectl_json(kubeconfig: Path | str, *args: str) -> Any:
    out = kubectl(kubeconfig, *args, "-o", "json")
    assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
    return json.loads(out.stdout)


def sim_cli(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dpfd.sim.cli", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)  # fmt: skip


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True)
    return {line.split()[0] for line in out.stdout.splitlines() if line.strip()}


@dataclass
class Sim:
    """One `dpf-sim up` started by a test; its output goes to `<tmp>/up.log`."""

    state: Path
    manifests: Path
    bfb_port: int
    flash_seconds: float
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.state.parent / f"{self.state.name}-up.log"

    @property
    def kubeconfig(self) -> Path:
        return self.state / "host.kubeconfig"

    def start(self) -> None:
        argv = [sys.executable, "-m", "dpfd.sim.cli", "up", "--manifests", str(self.manifests),
                "--state-dir", str(self.state), "--bfb-port", str(self.bfb_port),
                "--flash-seconds", f"{self.flash_seconds:g}", *self.extra]  # fmt: skip
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def check_running(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"dpf-sim up exited {self.proc.returncode}:\n{self.output()[-4000:]}")

    def wait_up(self, timeout: float = 120) -> dict[str, Any]:
        """Wait for the banner `up` prints once every process has started; returns sim.json."""

        def up() -> bool:
            self.check_running()
            return " up. Try: " in self.output()

        wait_for(up, timeout, "dpf-sim up to start everything")
        info: dict[str, Any] = json.loads((self.state / "sim.json").read_text())
        return info

    def status(self) -> list[dict[str, Any]]:
        out = sim_cli("status", "--state-dir", str(self.state), "-o", "json", timeout=30)
        assert out.returncode == 0, out.stderr
        rows: list[dict[str, Any]] = json.loads(out.stdout)
        return rows

    def dpus(self) -> dict[str, dict[str, Any]]:
        """The DPU objects as the real kubectl lists them, by name."""
        listing = kubectl_json(self.kubeconfig, "get", "dpus", "-A")
        return {d["metadata"]["name"]: d for d in listing["items"]}

    def netns(self, hosts: int) -> set[str]:
        """The names of the namespaces the rack makes for `hosts` hosts (see rack_plan.netns_name)."""
        return {netns_name(self.state.resolve(), i) for i in range(hosts)}

    def down(self) -> subprocess.CompletedProcess[str]:
        out = sim_cli("down", "--state-dir", str(self.state))
        if self.proc is not None:
            self.proc.wait(60)
        return out

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.down()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None:
            self.proc = None


def is_ready(dpu: dict[str, Any]) -> bool:
    """DPF's availability: not being deleted, phase Ready and its Ready condition True."""
    if dpu.get("metadata", {}).get("deletionTimestamp"):
        return False
    status = dpu.get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
    return status.get("phase") == "Ready" and bool(ready) and ready[0].get("status") == "True"
