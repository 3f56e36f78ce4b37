"""dpfctl inside dpf-sim: `dpf-sim exec NAME --state-dir DIR -- dpfctl status -o json` asks the dpfd of the emulated
host or DPU called NAME, through the admin socket in its (long) runtime directory, once the example fleet's one host
has provisioned its DPU and the DPU's own dpfd runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dpfd.sim.ports import free_port
from tests.e2e.simfleet import ROOT, Sim, example_docs, is_ready, wait_for, with_bfb_port, write_manifests

HOST = "worker-1"
DPU = "worker-1-0000-03-00"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    """The examples with one host (worker-1)."""
    port = free_port()
    docs = [d for d in with_bfb_port(example_docs(), port)
            if d["kind"] != "Node" or d["metadata"]["name"] == HOST]  # fmt: skip
    sim = Sim(tmp_path / "sim", write_manifests(tmp_path / "manifests", docs), port, 2.0)
    sim.start()
    try:
        yield sim
    finally:
        sim.cleanup()


def sim_exec(sim: Sim, name: str, *command: str) -> subprocess.CompletedProcess[str]:
    # dpfctl as an operator runs it: the console script on PATH.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for inherited in ("DPF_ADMIN_SOCKET", "DPF_ETCD_ENDPOINTS", "DPFD_CONFIG"):
        env.pop(inherited, None)
    return subprocess.run([sys.executable, "-m", "dpfd.sim.cli", "exec", name, "--state-dir", str(sim.state), "--",
                           *command], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)  # fmt: skip


def status(sim: Sim, name: str) -> dict[str, Any]:
    out = sim_exec(sim, name, "dpfctl", "status", "-o", "json")
    assert out.returncode == 0, out.stderr
    value: dict[str, Any] = json.loads(out.stdout)
    return value


def test_dpfctl_status_through_dpf_sim_exec_for_a_host_and_its_dpu(sim: Sim) -> None:
    sim.wait_up()
    wait_for(lambda: all(is_ready(d) for d in sim.dpus().values()) and sim.dpus(), 240, "the DPU Ready")

    host = status(sim, HOST)
    assert (host["node"], host["role"], host["dpus"]) == (HOST, "host", 1)
    assert host["etcd"]["connected"] and host["ready"] and host["gossip"]["enabled"]
    assert not host["drain"]["draining"]

    def dpu_status() -> dict[str, Any] | None:
        out = sim_exec(sim, DPU, "dpfctl", "status", "-o", "json")
        return json.loads(out.stdout) if out.returncode == 0 else None  # its dpfd may be starting after a reboot

    dpu = wait_for(dpu_status, 60, "the DPU's dpfd to answer")
    assert (dpu["node"], dpu["role"]) == (DPU, "dpu")
    assert dpu["etcd"]["connected"] and dpu["drain"] is None
    socket = Path(sim_exec(sim, DPU, "sh", "-c", 'echo "$DPF_ADMIN_SOCKET"').stdout.strip())
    assert len(os.fsencode(socket)) > 107 or socket.is_socket()  # reached whether or not it fits sun_path

    # The host's view of the DPU it provisioned: its phases with times; the DPU's dpfd provisions none.
    listing = sim_exec(sim, HOST, "dpfctl", "get", "dpus", "-o", "json")
    assert listing.returncode == 0, listing.stderr
    [row] = json.loads(listing.stdout)
    assert row["name"] == DPU and row["phase"] == "Ready"
    assert [h["phase"] for h in row["history"]][-1] == "Ready" and all(h["at"] > 0 for h in row["history"])
    refused = sim_exec(sim, DPU, "dpfctl", "get", "dpus")
    assert refused.returncode == 1 and refused.stderr.startswith("dpfctl: this dpfd is role dpu")

    unknown = sim_exec(sim, "worker-9", "dpfctl", "status")
    assert unknown.returncode == 2 and f"known: {HOST}, {DPU}" in unknown.stderr
