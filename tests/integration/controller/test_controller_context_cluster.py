"""The DPU cluster side of the context, with a real DPU cluster: the emulated API over TLS, reached through the
admin kubeconfig Secret a static DPUCluster names. Its health makes the DPUCluster Ready; the DPU's intent gets
the cluster's `kubeadm join` command; when the DPU's Node is Ready there it gets the DPU's nodeLabels and the
intent says clusterNodeReady."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
import yaml
from controller_harness import (
    NS,
    PROV,
    KubeEnv,
    dpuset_obj,
    kube,
    node_obj,
    start_replica,
    store,
    wait_until,
    write_report,
)

from controller.manager import ControllerOptions
from dpfd.api.intents import ObjectRef
from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.tls import ensure_tls
from dpfd.store import Store
from dpfd.store import keys as store_keys

__all__ = ["kube", "store"]  # fixtures

DPU_NAME = "worker-0-0000-03-00"
JOIN = re.compile(
    r"^kubeadm join 127\.0\.0\.1:(\d+) --token ([a-z0-9]{6})\.[a-z0-9]{16} "
    r"--discovery-token-ca-cert-hash sha256:[0-9a-f]{64}$"
)


@pytest_asyncio.fixture
async def dpu_cluster(tmp_path: Path) -> AsyncIterator[KubeApiServer]:
    server = KubeApiServer(tls=ensure_tls(tmp_path / "pki"), bookmark_interval=0.2)
    await server.start()
    yield server
    await server.stop()


async def context_of(store: Store) -> dict[str, Any]:
    kv = await store.get(store_keys.intent_key("worker-0", ObjectRef(kind="DPU", namespace=NS, name=DPU_NAME)))
    return dict(json.loads(kv.value)["context"]) if kv is not None else {}


def cluster_status(kube: KubeEnv) -> dict[str, Any]:
    found = kube.server.get_object(PROV, "DPUCluster", "dc1", NS) or {}
    return dict(found.get("status") or {})


async def test_cluster_health_join_command_and_node_ready(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str], dpu_cluster: KubeApiServer
) -> None:
    admin = yaml.safe_dump(dpu_cluster.kubeconfig()).encode()
    await kube.server.apply_object(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "dc1-admin", "namespace": NS},
         "data": {"admin.conf": base64.b64encode(admin).decode()}}
    )  # fmt: skip
    await kube.server.apply_object(
        {"apiVersion": PROV, "kind": "DPUCluster", "metadata": {"name": "dc1", "namespace": NS},
         "spec": {"type": "static", "version": "v1.30.0", "kubeconfig": "dc1-admin"}}
    )  # fmt: skip
    await kube.server.apply_object(node_obj("worker-0"))
    replica = await start_replica(
        kube, etcd_endpoints, options=ControllerOptions(events=False, cluster_health_interval=0.5)
    )
    try:
        st = await wait_until(lambda: cluster_status(kube).get("phase") == "Ready" and cluster_status(kube),
                              what="DPUCluster Ready by its health check")  # fmt: skip
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "HealthCheckPassed")

        await kube.server.apply_object(dpuset_obj(node_labels={"role": "worker", "zone": "a"}))

        def joined(ctx: dict[str, Any]) -> Any:
            return JOIN.match((ctx.get("cluster") or {}).get("joinCommand") or "")

        async def context_when(pred: Any) -> dict[str, Any] | None:
            ctx = await context_of(store)
            return ctx if pred(ctx) else None

        ctx = await wait_until(lambda: context_when(joined), what="join command in the DPU's context")
        m = joined(ctx)
        assert m is not None and dpu_cluster.url.endswith(f":{m.group(1)}")
        token_id = m.group(2)
        assert dpu_cluster.get_object("v1", "Secret", f"bootstrap-token-{token_id}", "kube-system") is not None
        assert ctx["cluster"]["name"] == "dc1" and ctx["cluster"]["namespace"] == NS
        ctx = await wait_until(lambda: context_when(lambda c: c.get("clusterNodeReady") is False),
                               what="no DPU Node yet")  # fmt: skip

        # The DPU joins (as kubeadm would register it): its Node appears, then turns Ready.
        await dpu_cluster.apply_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": DPU_NAME}})
        await dpu_cluster.apply_status(
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": DPU_NAME},
             "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
        )  # fmt: skip
        await wait_until(lambda: context_when(lambda c: c.get("clusterNodeReady") is True), what="clusterNodeReady")
        labels = (dpu_cluster.get_object("v1", "Node", DPU_NAME) or {})["metadata"].get("labels") or {}
        assert labels.get("role") == "worker" and labels.get("zone") == "a"
        assert labels.get("provisioning.dpu.nvidia.com/host") == "worker-0"  # as DPF adds after the install

        # The DPU is deleted (as a rollout replaces it): once its host has released it, its Node leaves the DPU
        # cluster too, so a new DPU of the same name cannot pass DPU Cluster Config on the old Node.
        dpu = kube.dpu(DPU_NAME)
        assert dpu is not None
        await store.put(store_keys.member_key("worker-0"), '{"role": "host"}')
        await kube.server.delete_object(PROV, "DPU", DPU_NAME, NS)
        await write_report(store, "worker-0", dpu, observedGeneration=1, phase="Deleting", details={"released": True})
        await wait_until(lambda: dpu_cluster.get_object("v1", "Node", DPU_NAME) is None,
                         what="the deleted DPU's Node removed from its cluster")  # fmt: skip

        # The DPU cluster's API goes away: the DPUCluster turns NotReady and says why.
        await dpu_cluster.stop()
        st = await wait_until(lambda: cluster_status(kube).get("phase") == "NotReady" and cluster_status(kube),
                              what="DPUCluster NotReady")  # fmt: skip
        ready = next(c for c in st["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "HealthCheckFailed" and "DPUCluster dpf-operator-system/dc1" in ready["message"]
    finally:
        await replica.stop()
