"""Pods, PodDisruptionBudgets, cordon, taints and drain of the emulated API through the real kubectl."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from test_eviction import pdb, pod, running_pod, set_phase

from dpfd.sim.kubeapi import KubeApiServer
from tests.waiting import eventually


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


async def test_kubectl_gets_pods_and_budgets(kubeapi: KubeApiServer, kubectl: Any) -> None:
    await running_pod(kubeapi, "web-1", app="web")
    await running_pod(kubeapi, "web-2", node="host-b", app="web")
    await kubeapi.apply_object(pdb("web", {"matchLabels": {"app": "web"}}, minAvailable=1))
    # kubectl's typed create sends protobuf
    created = await kubectl("create", "pdb", "db", "--selector=app=db,tier in (a,b)", "--max-unavailable=25%")
    assert created.out.strip() == "poddisruptionbudget.policy/db created"
    db = kubeapi.get_object("policy/v1", "PodDisruptionBudget", "db")
    assert db is not None and db["spec"] == {
        "maxUnavailable": "25%",
        "selector": {"matchLabels": {"app": "db"},
                     "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
    }  # fmt: skip

    pods = rows((await kubectl("get", "pods", "-o", "wide")).out)
    assert pods[0][:3] == ["NAME", "READY", "STATUS"] and "NODE" in pods[0]
    assert [(r[0], r[2]) for r in pods[1:]] == [("web-1", "Running"), ("web-2", "Running")]
    assert pods[2][pods[0].index("NODE")] == "host-b"
    by_node = rows((await kubectl("get", "pods", "--field-selector", "spec.nodeName=host-b", "-o", "name")).out)
    assert by_node == [["pod/web-2"]]

    budgets = rows((await kubectl("get", "pdb")).out)
    assert budgets[0] == ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"]
    assert [r[:4] for r in budgets[1:]] == [["db", "N/A", "25%", "0"], ["web", "1", "N/A", "1"]]
    as_json = json.loads((await kubectl("get", "poddisruptionbudget", "web", "-o", "json")).out)
    assert as_json["status"]["currentHealthy"] == 2 and as_json["status"]["expectedPods"] == 2


async def test_kubectl_cordon_taint_and_uncordon(kubeapi: KubeApiServer, kubectl: Any) -> None:
    await kubeapi.apply_object(node("host-a"))
    await kubectl("cordon", "host-a")
    await kubectl("taint", "nodes", "host-a", "dpu=flashing:NoSchedule")
    live = kubeapi.get_object("v1", "Node", "host-a")
    assert live is not None and live["spec"]["unschedulable"] is True
    assert live["spec"]["taints"] == [{"key": "dpu", "value": "flashing", "effect": "NoSchedule"}]
    assert "SchedulingDisabled" in (await kubectl("get", "node", "host-a")).out

    await kubectl("taint", "nodes", "host-a", "dpu:NoSchedule-")
    await kubectl("uncordon", "host-a")
    live = kubeapi.get_object("v1", "Node", "host-a")
    assert live is not None and not live["spec"].get("unschedulable") and not live["spec"].get("taints")


async def test_kubectl_drain_waits_for_the_budget(kubeapi: KubeApiServer, kubectl: Any) -> None:
    """kubectl drain evicts through the eviction subresource; the PDB-protected pod goes once its replacement is
    Ready (kubectl retries a 429 every 5 s)."""
    await kubeapi.apply_object(node("host-a"))
    await running_pod(kubeapi, "free", app="free")
    await running_pod(kubeapi, "web-1", app="web")
    await kubeapi.apply_object(pdb("web", {"matchLabels": {"app": "web"}}, minAvailable=1))

    drain = asyncio.create_task(kubectl("drain", "host-a", "--force", "--timeout=60s"))
    try:
        await eventually(lambda: kubeapi.get_object("v1", "Pod", "free") is None, within=20, what="free evicted")
        cordoned = kubeapi.get_object("v1", "Node", "host-a")
        assert cordoned is not None and cordoned["spec"]["unschedulable"] is True
        assert kubeapi.get_object("v1", "Pod", "web-1") is not None  # held by its budget

        await kubeapi.apply_object(pod("web-2", node="host-b", app="web"))
        await set_phase(kubeapi, "web-2", "Running", True)
        result = await asyncio.wait_for(drain, 30)
    finally:
        drain.cancel()
    assert "node/host-a drained" in result.out
    assert "Cannot evict pod as it would violate the pod's disruption budget." in result.err
    assert kubeapi.get_object("v1", "Pod", "web-1") is None
