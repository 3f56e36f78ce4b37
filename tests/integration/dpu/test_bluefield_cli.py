"""`dpf-sim bluefield` runs one emulated BlueField on its own; `dpfd dms-install` flashes it; `dpf-sim status`
shows its counters and whether its DPU OS dpfd runs."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dpfd.sim.bfb_image import make_image
from dpfd.store import Store
from tests.integration.dpu.conftest import member, render_cfg
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[3]
DPU = "dpu-standalone"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "GRPC_VERBOSITY": "ERROR"}


def dpf_sim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dpfd.sim.cli", *args], capture_output=True, text=True, env=ENV, timeout=60
    )


def status_json(state_dir: Path) -> list[dict[str, Any]]:
    done = dpf_sim("status", "--state-dir", str(state_dir), "-o", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert isinstance(rows, list)
    return rows


@pytest.fixture
def bluefield(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """(process, DMS address, its state dir) of `dpf-sim bluefield`, killed if the test left it running."""
    state = tmp_path / "sim" / DPU
    cmd = [sys.executable, "-m", "dpfd.sim.cli", "bluefield", "--listen", "127.0.0.1:0", "--insecure",
           "--name", DPU, "--state-dir", str(state), "--reboot-seconds", "0.2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    found = re.search(r"DMS on (\S+), state in (\S+), DPU OS on", first)
    if found is None:
        proc.kill()
        raise AssertionError(f"dpf-sim bluefield did not start: {first!r} {proc.stderr.read() if proc.stderr else ''}")
    assert found.group(2) == str(state)
    yield proc, found.group(1), state
    if proc.poll() is None:
        proc.kill()
        proc.wait()


async def test_standalone_bluefield_flashed_by_hand_boots_its_dpfd(
    bluefield: tuple[subprocess.Popen[str], str, Path], tmp_path: Path, etcd_endpoints: list[str], store: Store
) -> None:
    proc, address, state = bluefield
    bfb = tmp_path / "bf-bundle-test.bfb"
    bfb.write_bytes(make_image("bundle", 100_000))
    cfg = tmp_path / "bf.cfg"
    cfg.write_bytes(render_cfg(DPU, etcd_endpoints, None))
    install = [sys.executable, "-m", "dpfd.daemon", "dms-install", "--target", address, "--bfb", str(bfb),
               "--bf-cfg", str(cfg), "--name", DPU, "--insecure", "--poll", "0.05", "--reboot-timeout", "30"]  # fmt: skip
    done = await asyncio.to_thread(subprocess.run, install, capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr

    registered = await eventually(lambda: member(store, DPU), within=60, what=f"etcd member {DPU}")
    assert registered["role"] == "dpu"
    assert (state / "root/etc/dpf/dpfd.yaml").is_file()  # the DPU's root lives in its state dir
    [row] = status_json(tmp_path / "sim")
    assert (row["name"], row["installs"], row["activations"], row["reboots"]) == (DPU, 2, 1, 1)
    assert row["running_version"] == bfb.name and row["running_bf_cfg"] == f"{DPU}.cfg"
    assert row["dpfd_running"] is True and row["dpu_os"]["dpfd_pid"] == registered["pid"]
    table = dpf_sim("status", "--state-dir", str(tmp_path / "sim"))
    assert table.stdout.splitlines()[0].split() == [
        "NAME",
        "INSTALLS",
        "ACTIVATIONS",
        "REBOOTS",
        "MODE",
        "RUNNING",
        "DPFD",
    ]
    assert table.stdout.splitlines()[1].split() == [DPU, "2", "1", "1", "DPU", bfb.name, "running"]

    proc.send_signal(signal.SIGTERM)
    out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
    assert proc.returncode == 0
    stats = json.loads(out.strip().splitlines()[-1])
    assert stats["dpu_os"]["dpfd_running"] is False
    [row] = status_json(tmp_path / "sim")
    assert row["dpfd_running"] is False and row["reboots"] == 1  # the emulator stopped, its counts stay


def test_status_of_an_empty_or_missing_dir(tmp_path: Path) -> None:
    assert dpf_sim("status", "--state-dir", str(tmp_path)).stdout.strip() == f"no emulated DPUs under {tmp_path}"
    assert status_json(tmp_path) == []
    missing = dpf_sim("status", "--state-dir", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "is not a directory" in missing.stderr


def test_bluefield_refuses_half_tls_options(tmp_path: Path) -> None:
    done = dpf_sim("bluefield", "--listen", "127.0.0.1:0", "--ca", str(tmp_path / "ca.crt"))
    assert done.returncode == 2
    assert "give --ca, --cert and --key (mTLS), or --insecure" in done.stderr
