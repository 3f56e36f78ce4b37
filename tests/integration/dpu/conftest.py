"""Emulated BlueFields that boot their DPU OS, flashed through DmsClient with bf.cfgs rendered by dpf."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dpfd.api.provisioning import DPUFlavorSpec
from dpfd.host.bfcfg import BfCfgContext, DpuDaemonSettings, KubeadmJoin, render_bf_cfg
from dpfd.host.dms import DmsClient
from dpfd.host.dms.sequence import FlashResult, flash
from dpfd.sim.bfb_image import make_image
from dpfd.sim.bluefield.dms_server import EmulatedDms
from dpfd.sim.bluefield.dpu_os import DpuOsOptions
from dpfd.store import Store, keys

CA_HASH = "sha256:" + "0123456789abcdef" * 4
FAKE_JOIN = f"kubeadm join 127.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash {CA_HASH}"

# Stands in for kubeadm where the test is about the DPU OS, not the join: records its argv and config.
RECORDING_KUBEADM = """\
import json, sys
config = sys.argv[sys.argv.index("--config") + 1]
with open({calls!r}, "a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "config": open(config).read()}}) + "\\n")
print("This node has joined the cluster")
"""


def render_cfg(dpu: str, etcd: list[str], join: KubeadmJoin | None) -> bytes:
    ctx = BfCfgContext(
        dpu_name=dpu, node_name="worker-1", join=join, dpfd=DpuDaemonSettings(etcd_endpoints=tuple(etcd))
    )
    return render_bf_cfg(DPUFlavorSpec(), ctx)


@pytest.fixture
def bfb(tmp_path: Path) -> Path:
    path = tmp_path / "bf-bundle-2.9.1-40_25.02_ubuntu-22.04_prod.bfb"
    path.write_bytes(make_image("bf-bundle", 100_000))
    return path


@pytest.fixture
def recording_kubeadm(tmp_path: Path) -> tuple[list[str], Path]:
    """(argv to run as kubeadm, the JSON-lines file of its calls)."""
    calls = tmp_path / "kubeadm-calls.jsonl"
    script = tmp_path / "recording_kubeadm.py"
    script.write_text(RECORDING_KUBEADM.format(calls=str(calls)))
    return [sys.executable, str(script)], calls


def kubeadm_calls(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


StartBlueField = Callable[..., Awaitable[EmulatedDms]]


@pytest.fixture
async def start_bluefield(tmp_path: Path) -> AsyncIterator[StartBlueField]:
    """start_bluefield(name, kubeadm=argv, **kwargs) -> a running insecure EmulatedDms that boots its DPU OS."""
    started: list[EmulatedDms] = []

    async def start(name: str, kubeadm: list[str] | None = None, **kwargs: Any) -> EmulatedDms:
        kwargs.setdefault("reboot_seconds", 0.2)
        kwargs.setdefault("state_dir", tmp_path / "bluefields" / name)
        if "dpu_os" not in kwargs:
            kwargs["dpu_os"] = DpuOsOptions(stop_timeout=10.0, **({"kubeadm": kubeadm} if kubeadm else {}))
        dms = EmulatedDms("127.0.0.1:0", name=name, **kwargs)
        started.append(dms)
        return await dms.start()

    yield start
    for dms in started:
        await dms.stop()


async def flash_dpu(dms: EmulatedDms, bfb: Path, bf_cfg: bytes) -> FlashResult:
    async with DmsClient(dms.address, None, name=dms.name) as client:
        return await flash(client, dms.name, bfb, bf_cfg, reboot_poll=0.05, reboot_timeout=30)


async def member(store: Store, node: str) -> dict[str, Any] | None:
    kv = await store.get(keys.member_key(node))
    if kv is None:
        return None
    value = json.loads(kv.value)
    assert isinstance(value, dict)
    return value
