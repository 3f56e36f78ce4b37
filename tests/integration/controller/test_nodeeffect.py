"""The controller's node-effect applier against the emulated Kubernetes API over real HTTP: taints, labels,
drains through the Eviction API with PodDisruptionBudgets, shared owners, conflicts and bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from controller.kube.client import KubeClient
from controller.nodeeffect import (
    ANNOTATION,
    EffectPhase,
    InvalidNodeEffect,
    NodeEffectApplier,
    NodeEffectError,
    NodeEffectOptions,
)
from dpfd.sim.kubeapi import KubeApiServer
from tests.waiting import eventually

TAINT = {"taint": {"key": "dpu.nvidia.com/flashing", "value": "true", "effect": "NoSchedule"}}
DRAIN = {"drain": {"automaticNodeReboot": True}}
OWNER_A, OWNER_B = "dpf-operator-system/host-a-0000-03-00", "dpf-operator-system/host-a-0000-04-00"


@pytest_asyncio.fixture
async def server() -> AsyncIterator[KubeApiServer]:
    s = KubeApiServer()
    await s.start()
    yield s
    await s.stop()


@pytest_asyncio.fixture
async def client(server: KubeApiServer, tmp_path: Path) -> AsyncIterator[KubeClient]:
    path = tmp_path / "kubeconfig"
    server.write_kubeconfig(path)
    c = await KubeClient.from_kubeconfig(str(path))
    yield c
    await c.close()


class Clock:
    """Wall time the test moves by hand (the drain timeout is measured against it)."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def applier(client: KubeClient, clock: Clock) -> NodeEffectApplier:
    options = NodeEffectOptions(drain_timeout=60, backoff_initial=0.05, backoff_max=0.2)
    return NodeEffectApplier(client, options, clock=clock)


async def make_node(server: KubeApiServer, name: str = "host-a", **spec: Any) -> None:
    labels = spec.pop("labels", {})
    obj = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": spec}
    await server.apply_object(obj)


def node(server: KubeApiServer, name: str = "host-a") -> dict[str, Any]:
    obj = server.get_object("v1", "Node", name)
    assert obj is not None
    return obj


def taints(server: KubeApiServer) -> list[tuple[str, str]]:
    return [(t["key"], t["effect"]) for t in node(server)["spec"].get("taints") or []]


def labels(server: KubeApiServer) -> dict[str, str]:
    return dict(node(server)["metadata"].get("labels") or {})


def cordoned(server: KubeApiServer) -> bool:
    return bool(node(server)["spec"].get("unschedulable"))


def record(server: KubeApiServer) -> dict[str, Any] | None:
    raw = (node(server)["metadata"].get("annotations") or {}).get(ANNOTATION)
    return json.loads(raw) if raw else None


async def add_pod(
    server: KubeApiServer, name: str, node_name: str = "host-a", *, ready: bool = True, owner_kind: str | None = None,
    annotations: dict[str, str] | None = None, **labels: str,
) -> None:  # fmt: skip
    meta: dict[str, Any] = {"name": name, "namespace": "default", "labels": labels}
    if owner_kind is not None:
        # The emulator serves no apps/v1 kinds: a ConfigMap stands in as the owner, so that the garbage collector
        # (which only asks whether the owner's uid exists) leaves the pod alone.
        stand_in = await server.apply_object(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-owner", "namespace": "default"}}
        )
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner_kind, "name": f"{name}-owner",
                                    "uid": stand_in["metadata"]["uid"], "controller": True}]  # fmt: skip
    if annotations:
        meta["annotations"] = annotations
    await server.apply_object({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                               "spec": {"nodeName": node_name, "containers": [{"name": "c"}]}})  # fmt: skip
    await set_ready(server, name, ready)


async def set_ready(server: KubeApiServer, name: str, ready: bool) -> None:
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    await server.apply_status({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "status": status})


def pod_names(server: KubeApiServer) -> list[str]:
    return [p["metadata"]["name"] for p in server.objects("v1", "Pod", "default")]


async def add_budget(server: KubeApiServer, name: str, app: str, min_available: int) -> None:
    await server.apply_object({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                               "metadata": {"name": name, "namespace": "default"},
                               "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}}})  # fmt: skip


# ---- taint and customLabel


async def test_taint_is_added_and_reverted_without_touching_other_taints(
    server: KubeApiServer, applier: NodeEffectApplier
) -> None:
    await make_node(server, taints=[{"key": "gpu", "value": "busy", "effect": "NoExecute"}])
    state = await applier.apply("host-a", TAINT, OWNER_A)
    assert state.phase is EffectPhase.APPLIED and state.done
    assert taints(server) == [("gpu", "NoExecute"), ("dpu.nvidia.com/flashing", "NoSchedule")]
    assert record(server) == {
        "taint/dpu.nvidia.com/flashing": {
            "owners": {OWNER_A: "2025-06-15T15:06:40Z"},
            "ours": True,
            "value": {"key": "dpu.nvidia.com/flashing", "effect": "NoSchedule", "value": "true"},
        }
    }
    rv = node(server)["metadata"]["resourceVersion"]
    await applier.apply("host-a", TAINT, OWNER_A)  # idempotent: nothing to write
    assert node(server)["metadata"]["resourceVersion"] == rv

    await applier.revert("host-a", TAINT, OWNER_A)
    assert taints(server) == [("gpu", "NoExecute")]
    assert record(server) is None


async def test_a_taint_whose_key_is_present_is_neither_added_nor_removed(
    server: KubeApiServer, applier: NodeEffectApplier
) -> None:
    admins = {"key": "dpu.nvidia.com/flashing", "value": "admin", "effect": "NoExecute"}
    await make_node(server, taints=[admins])
    await applier.apply("host-a", TAINT, OWNER_A)
    assert node(server)["spec"]["taints"] == [admins]
    await applier.revert("host-a", TAINT, OWNER_A)
    assert node(server)["spec"]["taints"] == [admins]


async def test_a_removed_taint_is_put_back_while_wanted(server: KubeApiServer, applier: NodeEffectApplier) -> None:
    await make_node(server)
    await applier.apply("host-a", TAINT, OWNER_A)
    await server.apply_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "host-a"},
                               "spec": {"taints": None}})  # fmt: skip
    assert taints(server) == []
    await applier.apply("host-a", TAINT, OWNER_A)
    assert taints(server) == [("dpu.nvidia.com/flashing", "NoSchedule")]


async def test_custom_labels_are_set_and_reverted_only_if_still_ours(
    server: KubeApiServer, applier: NodeEffectApplier
) -> None:
    await make_node(server, labels={"rack": "r1", "role": "worker"})
    effect = {"customLabel": {"dpu.nvidia.com/provisioning": "true", "role": "dpu-host", "zone": "z1"}}
    await applier.apply("host-a", effect, OWNER_A)
    assert labels(server) == {"rack": "r1", "role": "dpu-host", "dpu.nvidia.com/provisioning": "true", "zone": "z1"}

    await server.apply_object({"apiVersion": "v1", "kind": "Node",
                               "metadata": {"name": "host-a", "labels": {"zone": "z9"}}})  # fmt: skip
    await applier.revert("host-a", effect, OWNER_A)
    # ours removed, the one we overwrote restored, the one someone changed since left as they set it
    assert labels(server) == {"rack": "r1", "role": "worker", "zone": "z9"}
    assert record(server) is None


async def test_changing_the_effect_releases_the_old_one(server: KubeApiServer, applier: NodeEffectApplier) -> None:
    await make_node(server)
    await applier.apply("host-a", TAINT, OWNER_A)
    await applier.apply("host-a", {"customLabel": {"flashing": "yes"}}, OWNER_A)
    assert taints(server) == [] and labels(server) == {"flashing": "yes"}
    assert list(await applier.holders("host-a")) == ["label/flashing"]


# ---- owners


async def test_two_owners_share_an_effect_until_the_last_reverts(
    server: KubeApiServer, applier: NodeEffectApplier
) -> None:
    await make_node(server)
    await applier.apply("host-a", TAINT, OWNER_A)
    await applier.apply("host-a", TAINT, OWNER_B)
    assert taints(server) == [("dpu.nvidia.com/flashing", "NoSchedule")]
    assert await applier.holders("host-a") == {"taint/dpu.nvidia.com/flashing": sorted([OWNER_A, OWNER_B])}

    await applier.revert("host-a", TAINT, OWNER_A)
    assert taints(server) == [("dpu.nvidia.com/flashing", "NoSchedule")]
    assert await applier.holders("host-a") == {"taint/dpu.nvidia.com/flashing": [OWNER_B]}
    await applier.revert("host-a", TAINT, OWNER_A)  # again: nothing more
    assert taints(server) == [("dpu.nvidia.com/flashing", "NoSchedule")]

    await applier.revert("host-a", TAINT, OWNER_B)
    assert taints(server) == [] and record(server) is None


async def test_concurrent_owners_all_get_recorded_despite_conflicts(
    server: KubeApiServer, applier: NodeEffectApplier
) -> None:
    await make_node(server)
    owners = [f"dpf-operator-system/dpu-{i}" for i in range(8)]
    await asyncio.gather(*(applier.apply("host-a", DRAIN, o) for o in owners))
    assert await applier.holders("host-a") == {"cordon": owners}
    assert cordoned(server)
    await asyncio.gather(*(applier.revert("host-a", DRAIN, o) for o in owners[:-1]))
    assert cordoned(server)
    await applier.revert("host-a", DRAIN, owners[-1])
    assert not cordoned(server) and record(server) is None


# ---- drain


async def test_drain_evicts_all_but_daemonset_and_mirror_pods_and_waits_for_budgets(
    server: KubeApiServer, applier: NodeEffectApplier
) -> None:
    await make_node(server)
    await add_pod(server, "agent", owner_kind="DaemonSet")
    await add_pod(server, "static", annotations={"kubernetes.io/config.mirror": "hash"})
    await add_pod(server, "batch", owner_kind="ReplicaSet")
    await add_pod(server, "web-1", app="web")
    await add_pod(server, "elsewhere", node_name="host-b")
    await add_budget(server, "web", "web", 1)

    state = await applier.apply("host-a", DRAIN, OWNER_A)
    assert state.phase is EffectPhase.DRAINING and not state.done
    assert state.remaining_pods == ("default/web-1",) and state.blocked_by == ("default/web",)
    assert "blocked by PodDisruptionBudget default/web" in state.message
    assert cordoned(server)
    assert pod_names(server) == ["agent", "elsewhere", "static", "web-1"]

    again = await applier.apply("host-a", DRAIN, OWNER_A)  # level-triggered: continues, backing off
    assert again.phase is EffectPhase.DRAINING and again.retry_after > state.retry_after

    await add_pod(server, "web-2", node_name="host-b", ready=False, app="web")
    assert (await applier.apply("host-a", DRAIN, OWNER_A)).remaining_pods == ("default/web-1",)
    await set_ready(server, "web-2", True)
    done = await applier.apply("host-a", DRAIN, OWNER_A)
    assert done.phase is EffectPhase.DRAINED and done.done
    assert pod_names(server) == ["agent", "elsewhere", "static", "web-2"]

    await applier.revert("host-a", DRAIN, OWNER_A)
    assert not cordoned(server) and record(server) is None


async def test_apply_until_done_proceeds_once_the_replacement_is_ready(
    server: KubeApiServer, applier: NodeEffectApplier
) -> None:
    await make_node(server)
    await add_pod(server, "web-1", app="web")
    await add_budget(server, "web", "web", 1)
    task = asyncio.create_task(applier.apply_until_done("host-a", DRAIN, OWNER_A))
    try:
        await eventually(lambda: cordoned(server), what="cordon")
        assert not task.done()
        await add_pod(server, "web-2", node_name="host-b", app="web")
        state = await asyncio.wait_for(task, 10)
    finally:
        task.cancel()
    assert state.phase is EffectPhase.DRAINED
    assert pod_names(server) == ["web-2"]


async def test_drain_times_out_while_a_budget_blocks(
    server: KubeApiServer, applier: NodeEffectApplier, clock: Clock
) -> None:
    await make_node(server)
    await add_pod(server, "web-1", app="web")
    await add_budget(server, "web", "web", 1)
    assert (await applier.apply("host-a", DRAIN, OWNER_A)).phase is EffectPhase.DRAINING
    clock.now += 59
    assert (await applier.apply("host-a", DRAIN, OWNER_A)).phase is EffectPhase.DRAINING
    clock.now += 1
    state = await applier.apply("host-a", DRAIN, OWNER_A)
    assert state.phase is EffectPhase.DRAIN_TIMED_OUT and not state.done
    assert state.message.startswith("drain timed out: 1 pod(s) left to evict")
    # a second owner joining later has its own clock
    assert (await applier.apply("host-a", DRAIN, OWNER_B)).phase is EffectPhase.DRAINING


async def test_revert_leaves_a_node_cordoned_before_us_cordoned(
    server: KubeApiServer, applier: NodeEffectApplier
) -> None:
    await make_node(server, unschedulable=True)
    assert (await applier.apply("host-a", DRAIN, OWNER_A)).phase is EffectPhase.DRAINED
    await applier.revert("host-a", DRAIN, OWNER_A)
    assert cordoned(server) and record(server) is None


# ---- bad input and missing nodes


@pytest.mark.parametrize(
    ("effect", "why"),
    [
        ({}, "must set exactly one of noEffect, taint, customLabel, drain; got none"),
        ({"taint": TAINT["taint"], "drain": {}}, "got taint, drain"),
        ({"taint": {"key": "k", "effect": "Sometimes"}}, "nodeEffect.taint.effect: must be one of"),
        ({"customLabel": {"a": 1}}, "keys and values must be strings"),
        ({"cordon": True}, "unknown field(s) cordon"),
    ],
)
async def test_invalid_effects_are_refused_and_change_nothing(
    server: KubeApiServer, applier: NodeEffectApplier, effect: dict[str, Any], why: str
) -> None:
    await make_node(server)
    before = node(server)
    with pytest.raises(InvalidNodeEffect) as e:
        await applier.apply("host-a", effect, OWNER_A)
    assert why in str(e.value)
    assert node(server) == before


async def test_no_effect_does_nothing(server: KubeApiServer, applier: NodeEffectApplier) -> None:
    await make_node(server)
    before = node(server)
    assert (await applier.apply("host-a", {"noEffect": True}, OWNER_A)).phase is EffectPhase.APPLIED
    await applier.revert("host-a", {"noEffect": True}, OWNER_A)
    assert node(server) == before


async def test_missing_node_and_unreadable_record(server: KubeApiServer, applier: NodeEffectApplier) -> None:
    with pytest.raises(NodeEffectError, match="Node host-z not found"):
        await applier.apply("host-z", TAINT, OWNER_A)
    await applier.revert("host-z", TAINT, OWNER_A)  # nothing to revert

    await server.apply_object({"apiVersion": "v1", "kind": "Node",
                               "metadata": {"name": "host-a", "annotations": {ANNOTATION: "{not json"}}})  # fmt: skip
    before = node(server)
    with pytest.raises(NodeEffectError, match=f"Node host-a: annotation {ANNOTATION} is not a node-effect record"):
        await applier.apply("host-a", TAINT, OWNER_A)
    assert node(server) == before
