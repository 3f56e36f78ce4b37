"""End to end on the DPU side: a flashed emulated BlueField boots its DPU OS, whose real dpfd runs the emulated
kubeadm against the emulated DPU-cluster API over TLS; the DPU's Node appears Ready with its labels."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from dpfd.host.bfcfg import KubeadmJoin
from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.tls import ensure_tls
from dpfd.store import Store
from tests.integration.dpu.conftest import StartBlueField, flash_dpu, member, render_cfg
from tests.waiting import eventually

DPU = "worker-1-0000-03-00"
TOKEN_ID, TOKEN_SECRET = "h3dpu0", "0123456789abcdef"
LABELS = {"provisioning.dpu.nvidia.com/host": "worker-1", "rack": "r7"}
BOOT = 60.0


def pin(ca_pem: bytes) -> str:
    """kubeadm's CA pin, computed here independently of the code under test."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def token_secret() -> dict[str, Any]:
    """A bootstrap-token Secret as `kubeadm token create` (and dpf's controller) writes it."""
    expiration = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {"token-id": TOKEN_ID, "token-secret": TOKEN_SECRET, "expiration": expiration,
            "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true"}  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{TOKEN_ID}", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


@pytest.fixture
async def dpu_cluster(tmp_path: Path) -> AsyncIterator[tuple[KubeApiServer, str]]:
    """The emulated DPU-cluster API over TLS with a bootstrap token, and its join command."""
    tls = ensure_tls(tmp_path / "dpu-cluster-pki")
    api = KubeApiServer(tls=tls)
    url = await api.start()
    await api.apply_object(token_secret())
    endpoint = url.removeprefix("https://")
    command = (
        f"kubeadm join {endpoint} --token {TOKEN_ID}.{TOKEN_SECRET} --discovery-token-ca-cert-hash {pin(tls.ca_pem)}"
    )
    yield api, command
    await api.stop()


def ready_node(api: KubeApiServer, name: str) -> dict[str, Any] | None:
    node = api.get_object("v1", "Node", name)
    if node is None:
        return None
    conditions = (node.get("status") or {}).get("conditions") or []
    return node if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None


async def test_flashed_dpu_joins_its_cluster_and_its_node_is_ready_with_labels(
    dpu_cluster: tuple[KubeApiServer, str],
    start_bluefield: StartBlueField,
    store: Store,
    etcd_endpoints: list[str],
    bfb: Path,
) -> None:
    api, join_command = dpu_cluster
    dms = await start_bluefield(DPU)  # the DPU OS's kubeadm is the emulated one
    join = KubeadmJoin.from_join_command(join_command, node_labels=LABELS)
    assert api.get_object("v1", "Node", DPU) is None
    await flash_dpu(dms, bfb, render_cfg(DPU, etcd_endpoints, join))

    registered = await eventually(lambda: member(store, DPU), within=BOOT, what=f"etcd member {DPU}")
    assert registered["role"] == "dpu"
    node = await eventually(lambda: ready_node(api, DPU), within=BOOT, what=f"Node {DPU} Ready in the DPU cluster")
    labels = node["metadata"]["labels"]
    assert {k: labels.get(k) for k in LABELS} == LABELS
    assert labels["kubernetes.io/hostname"] == DPU
    assert dms.dpu_os is not None
    marker = dms.dpu_os.root / "var/lib/dpfd/kubeadm/joined.json"
    await eventually(marker.exists, within=BOOT, what="the join marker")
    assert not (dms.dpu_os.root / "var/lib/dpfd/kubeadm/join-config.yaml").exists()  # token gone after the join

    # A reflash gives the DPU a fresh root: its new dpfd joins again, and the Node stays Ready.
    before = time.time_ns()
    await flash_dpu(dms, bfb, render_cfg(DPU, etcd_endpoints, join))
    await eventually(
        lambda: marker.exists() and marker.stat().st_mtime_ns >= before, within=BOOT, what="a join after the reflash"
    )
    assert dms.stats()["dpu_os"]["boots"] == 2
    assert ready_node(api, DPU) is not None


async def test_a_wrong_ca_pin_keeps_the_dpu_retrying_and_out_of_the_cluster(
    dpu_cluster: tuple[KubeApiServer, str],
    start_bluefield: StartBlueField,
    store: Store,
    etcd_endpoints: list[str],
    bfb: Path,
) -> None:
    api, join_command = dpu_cluster
    wrong = join_command.rsplit(" ", 1)[0] + " sha256:" + "00" * 32
    dms = await start_bluefield(DPU)
    await flash_dpu(dms, bfb, render_cfg(DPU, etcd_endpoints, KubeadmJoin.from_join_command(wrong)))
    await eventually(lambda: member(store, DPU), within=BOOT, what=f"etcd member {DPU}")
    assert dms.dpu_os is not None
    log = dms.dpu_os.log_path
    await eventually(
        lambda: log.read_text().count("event=join_failed") >= 2, within=BOOT, what="two failed join attempts logged"
    )
    failure = next(line for line in log.read_text().splitlines() if "event=join_failed" in line)
    assert "exited with status 1" in failure and "attempt=1" in failure
    assert "couldn't validate the identity of the API Server" in failure  # kubeadm's own words reach the log
    assert api.get_object("v1", "Node", DPU) is None
    assert not (dms.dpu_os.root / "var/lib/dpfd/kubeadm/joined.json").exists()
