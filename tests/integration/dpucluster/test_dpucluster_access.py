"""The controller's DPU-cluster access (controller/dpucluster) against real emulated API servers: the host
cluster holding DPUClusters and their admin kubeconfig Secrets, and DPU clusters served over TLS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from controller.dpucluster import DpuClusterError, DpuClusters, DpuClusterStatusReconciler
from controller.dpucluster.resources import DPUCLUSTERS
from controller.kube.client import KubeClient
from controller.kube.informer import Informer
from controller.kube.objects import ObjKey
from dpfd.api.crds import generate_crds
from dpfd.sim import bootstrap_tokens as bootstrap
from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.tls import ServerTls
from tests.integration.dpucluster.conftest import KubeApiProcess, Run, run_command
from tests.waiting import eventually

NS = "dpf-operator-system"
PROV = "provisioning.dpu.nvidia.com/v1alpha1"
KEY = ObjKey(NS, "dpu-cluster-1")
JOIN = re.compile(
    r"^kubeadm join (127\.0\.0\.1:\d+) --token ([a-z0-9]{6})\.([a-z0-9]{16}) --discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})$"
)


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[tuple[KubeApiServer, KubeClient]]:
    server = KubeApiServer()
    await server.start()
    await server.register_crds(generate_crds())
    server.write_kubeconfig(tmp_path / "host.conf")
    client = await KubeClient.from_kubeconfig(str(tmp_path / "host.conf"))
    yield server, client
    await client.close()
    await server.stop()


async def add_cluster(
    host: KubeApiServer,
    admin_conf: bytes | None,
    *,
    name: str = KEY.name,
    secret: str | None = None,
    type_: str = "static",
) -> dict[str, Any]:
    secret = secret if secret is not None else f"{name}-admin-kubeconfig"
    if admin_conf is not None:
        await host.apply_object({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": NS},
                                 "data": {"admin.conf": base64.b64encode(admin_conf).decode()}})  # fmt: skip
    spec: dict[str, Any] = {"type": type_, "version": "v1.30.2"}
    if secret:
        spec["kubeconfig"] = secret
    return await host.apply_object({"apiVersion": PROV, "kind": "DPUCluster",
                                    "metadata": {"name": name, "namespace": NS}, "spec": spec})  # fmt: skip


def pin_of(ca_pem: bytes) -> str:
    ca = x509.load_pem_x509_certificate(ca_pem)
    spki = ca.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def token_id(command: str) -> str:
    m = JOIN.match(command)
    assert m, command
    return m.group(2)


def token_secrets(dpu_api: KubeApiServer) -> dict[str, dict[str, str]]:
    return {
        s["metadata"]["name"]: bootstrap.secret_data(s)
        for s in dpu_api.objects("v1", "Secret", "kube-system")
        if s.get("type") == "bootstrap.kubernetes.io/token"
    }


@pytest.fixture
async def clusters(host: tuple[KubeApiServer, KubeClient]) -> AsyncIterator[DpuClusters]:
    dc = DpuClusters(host[1], reconnect_interval=0.2)
    task = asyncio.create_task(dc.run())
    yield dc
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await dc.close()


async def test_join_command_kubeadm_join_node_ready_and_labels_end_to_end(
    host: tuple[KubeApiServer, KubeClient], clusters: DpuClusters, kubeapi_process: KubeApiProcess, kubectl: Run
) -> None:
    """The join command drives the emulated kubeadm against the DPU cluster's API process; the Node shows up
    Ready through the informer, the handler hears of it, and label_node labels it."""
    api = kubeapi_process
    cluster = await add_cluster(host[0], api.kubeconfig.read_bytes())
    changed: list[tuple[ObjKey, str]] = []
    clusters.add_handler(lambda key, node: changed.append((key, node)))

    command = await clusters.join_command(cluster)
    m = JOIN.match(command)
    assert m, command
    endpoint, token_id, token_secret, pin = m.groups()
    assert endpoint == api.endpoint
    ca_pem = base64.b64decode(
        yaml.safe_load(api.kubeconfig.read_text())["clusters"][0]["cluster"]["certificate-authority-data"]
    )
    assert pin == pin_of(ca_pem)
    assert await clusters.join_command(cluster) == command  # reused, not a token per call

    got = json.loads((await kubectl(api.kubeconfig, "get", "secret", "-n", "kube-system", "-o", "json")).out)
    tokens = [s for s in got["items"] if s["type"] == "bootstrap.kubernetes.io/token"]
    assert [s["metadata"]["name"] for s in tokens] == [f"bootstrap-token-{token_id}"]
    data = bootstrap.secret_data(tokens[0])
    assert data["token-id"] == token_id and data["token-secret"] == token_secret
    assert data["usage-bootstrap-authentication"] == "true" and data["usage-bootstrap-signing"] == "true"
    assert bootstrap.parse_expiration(data["expiration"]) is not None

    assert await eventually(lambda: clusters.node_ready(KEY, "dpu-a") is False, what="Nodes synced, dpu-a absent")
    argv = command.split()[2:]  # after "kubeadm join"
    joined = await run_command(sys.executable, "-m", "dpfd.sim.kubeadm", "join", *argv, "--node-name", "dpu-a")
    assert joined.rc == 0, joined.err
    await eventually(lambda: clusters.node_ready(KEY, "dpu-a"), what="dpu-a Ready in the DPU cluster")
    assert (KEY, "dpu-a") in changed

    await clusters.label_node(KEY, "dpu-a", {"provisioning.dpu.nvidia.com/dpuset": "set-1"})
    node = json.loads((await kubectl(api.kubeconfig, "get", "node", "dpu-a", "-o", "json")).out)
    assert node["metadata"]["labels"]["provisioning.dpu.nvidia.com/dpuset"] == "set-1"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "dpu-a"  # the others stay


async def test_join_tokens_are_reused_renewed_and_cleaned_up(
    host: tuple[KubeApiServer, KubeClient], tls_kubeapi: KubeApiServer, tmp_path: Path
) -> None:
    now = [1_000_000_000.0]
    admin = yaml.safe_dump(tls_kubeapi.kubeconfig()).encode()
    cluster = await add_cluster(host[0], admin)
    dc = DpuClusters(host[1], token_ttl=24 * 3600, token_min_left=3600, token_recheck=60, clock=lambda: now[0])
    try:
        first = JOIN.match(await dc.join_command(cluster))
        assert first
        assert list(token_secrets(tls_kubeapi)) == [f"bootstrap-token-{first.group(2)}"]
        assert token_secrets(tls_kubeapi)[f"bootstrap-token-{first.group(2)}"]["expiration"] == "2001-09-10T01:46:40Z"

        now[0] += 22 * 3600  # 2 h left: still handed out
        assert token_id(await dc.join_command(cluster)) == first.group(2)
        now[0] += 1.5 * 3600  # 30 min left: a new token
        second = JOIN.match(await dc.join_command(cluster))
        assert second and second.group(2) != first.group(2)
        assert len(token_secrets(tls_kubeapi)) == 2  # the old one still works until it expires

        # another controller (a restart, a new leader) finds the token instead of making one
        other = DpuClusters(host[1], clock=lambda: now[0])
        try:
            assert token_id(await other.join_command(cluster)) == second.group(2)
        finally:
            await other.close()

        # someone deleted the token: noticed within token_recheck and replaced; the first one, expired by now,
        # is cleaned up (the token cleaner's job in a real cluster)
        await tls_kubeapi.delete_object("v1", "Secret", f"bootstrap-token-{second.group(2)}", "kube-system")
        now[0] += 3600
        third = JOIN.match(await dc.join_command(cluster))
        assert third and third.group(2) not in (first.group(2), second.group(2))
        assert list(token_secrets(tls_kubeapi)) == [f"bootstrap-token-{third.group(2)}"]
    finally:
        await dc.close()


async def test_clear_errors_for_unusable_clusters(
    host: tuple[KubeApiServer, KubeClient], tls_kubeapi: KubeApiServer
) -> None:
    dc = DpuClusters(host[1])
    try:
        missing = await add_cluster(host[0], None, name="no-secret", secret="nowhere")
        with pytest.raises(
            DpuClusterError,
            match=rf"DPUCluster {NS}/no-secret: spec.kubeconfig names Secret {NS}/nowhere, which does not exist",
        ):
            await dc.join_command(missing)
        plain = yaml.safe_dump(
            {**tls_kubeapi.kubeconfig(), "clusters": [{"name": "dpf-sim", "cluster": {"server": tls_kubeapi.url}}]}
        )
        no_ca = await add_cluster(host[0], plain.encode(), name="no-ca")
        with pytest.raises(DpuClusterError, match="no certificate-authority-data"):
            await dc.join_command(no_ca)
        assert "no certificate-authority-data" in dc.error(ObjKey(NS, "no-ca"))
        with pytest.raises(DpuClusterError, match=f"DPUCluster {NS}/unknown is not watched"):
            await dc.label_node(ObjKey(NS, "unknown"), "dpu-a", {"a": "b"})
        assert dc.node_ready(ObjKey(NS, "unknown"), "dpu-a") is None
    finally:
        await dc.close()


async def test_status_reconciler_reports_ready_and_not_ready(
    host: tuple[KubeApiServer, KubeClient], clusters: DpuClusters, pki: ServerTls
) -> None:
    dpu_api = KubeApiServer(tls=pki)
    await dpu_api.start()
    stopped = False
    informer = Informer(host[1], DPUCLUSTERS)
    reconciler = DpuClusterStatusReconciler(host[1], informer, clusters, health_period=0.2)
    tasks = [asyncio.create_task(informer.run()), asyncio.create_task(reconciler.run())]
    try:
        await add_cluster(host[0], yaml.safe_dump(dpu_api.kubeconfig()).encode())
        await add_cluster(host[0], None, name="lost", secret="lost-admin-kubeconfig")
        await add_cluster(host[0], None, name="kamaji-1", secret="", type_="kamaji")

        def status(name: str) -> dict[str, Any]:
            obj = host[0].get_object(PROV, "DPUCluster", name, NS) or {}
            return obj.get("status") or {}

        def conditions(name: str) -> dict[str, tuple[str, str, str]]:
            return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status(name).get("conditions") or []}

        await eventually(lambda: status(KEY.name).get("phase") == "Ready", what="DPUCluster Ready")
        assert conditions(KEY.name) == {"Created": ("True", "Created", ""), "Ready": ("True", "HealthCheckPassed", "")}

        await eventually(lambda: status("lost").get("phase") == "NotReady", what="DPUCluster lost NotReady")
        ready = conditions("lost")["Ready"]
        assert ready[:2] == ("False", "HealthCheckFailed")
        assert f"Secret {NS}/lost-admin-kubeconfig, which does not exist" in ready[2]

        await eventually(lambda: "Created" in conditions("kamaji-1"), what="kamaji-1 conditions")
        assert status("kamaji-1")["phase"] == "Creating"
        assert conditions("kamaji-1") == {"Created": ("False", "EmptyKubeconfig", "spec.kubeconfig is empty")}

        await dpu_api.stop()  # the DPU cluster's API goes away
        stopped = True
        await eventually(lambda: status(KEY.name).get("phase") == "NotReady", what="DPUCluster NotReady", within=15)
        assert conditions(KEY.name)["Ready"][:2] == ("False", "HealthCheckFailed")
        assert "health check failed" in conditions(KEY.name)["Ready"][2]
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not stopped:
            await dpu_api.stop()
