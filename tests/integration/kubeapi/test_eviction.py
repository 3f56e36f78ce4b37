"""Pods, PodDisruptionBudgets and the eviction subresource of the emulated API, through kubernetes-asyncio
(the typed client, as any Kubernetes client would call them) and the real kubectl."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubeapi_harness import watch_events
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from dpfd.sim.kubeapi import KubeApiServer
from tests.waiting import eventually

VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."


def pod(name: str, node: str = "host-a", namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
    }


def pdb(name: str, selector: dict[str, Any] | None, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"selector": selector, **spec} if selector is not None else dict(spec)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": body,
    }


async def set_phase(server: KubeApiServer, name: str, phase: str, ready: bool, namespace: str = "default") -> None:
    """What the kubelet reports: the pod's phase and its Ready condition."""
    status = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}
    await server.apply_status(
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "status": status}
    )


async def running_pod(server: KubeApiServer, name: str, *, ready: bool = True, **kw: Any) -> None:
    await server.apply_object(pod(name, **kw))
    await set_phase(server, name, "Running", ready, kw.get("namespace", "default"))


def budget_status(server: KubeApiServer, name: str) -> dict[str, Any]:
    obj = server.get_object("policy/v1", "PodDisruptionBudget", name)
    assert obj is not None
    return dict(obj.get("status") or {})


def eviction(name: str, namespace: str = "default", **delete_options: Any) -> client.V1Eviction:
    return client.V1Eviction(
        metadata=client.V1ObjectMeta(name=name, namespace=namespace),
        delete_options=client.V1DeleteOptions(**delete_options) if delete_options else None,
    )


async def evict(api: client.ApiClient, name: str, namespace: str = "default", **delete_options: Any) -> Any:
    return await client.CoreV1Api(api).create_namespaced_pod_eviction(
        name, namespace, eviction(name, namespace, **delete_options)
    )


async def refused(api: client.ApiClient, name: str, namespace: str = "default") -> tuple[int, dict[str, Any]]:
    """The status code and Status body of an eviction the server must refuse."""
    with pytest.raises(ApiException) as e:
        await evict(api, name, namespace)
    return e.value.status, json.loads(e.value.body)


async def test_eviction_without_a_budget_deletes_the_pod(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    await running_pod(kubeapi, "lonely")
    answer = await client.CoreV1Api(api).create_namespaced_pod_eviction_with_http_info(
        "lonely", "default", eviction("lonely")
    )
    assert answer[1] == 201
    assert kubeapi.get_object("v1", "Pod", "lonely") is None


async def test_eviction_of_a_missing_pod_is_404(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    code, body = await refused(api, "nope")
    assert code == 404
    assert body["reason"] == "NotFound" and body["message"] == 'pods "nope" not found'


async def test_eviction_name_must_match_the_url(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    await running_pod(kubeapi, "a")
    with pytest.raises(ApiException) as e:
        await client.CoreV1Api(api).create_namespaced_pod_eviction("a", "default", eviction("b"))
    assert e.value.status == 400
    assert json.loads(e.value.body)["message"] == "name in URL does not match name in Eviction object"
    assert kubeapi.get_object("v1", "Pod", "a") is not None


async def test_budget_blocks_eviction_until_a_replacement_is_ready(
    kubeapi: KubeApiServer, api: client.ApiClient
) -> None:
    await running_pod(kubeapi, "web-1", app="web")
    policy = client.PolicyV1Api(api)
    await policy.create_namespaced_pod_disruption_budget("default", pdb("web", {"matchLabels": {"app": "web"}},
                                                                        minAvailable=1))  # fmt: skip
    status = budget_status(kubeapi, "web")
    assert (status["expectedPods"], status["currentHealthy"], status["desiredHealthy"]) == (1, 1, 1)
    assert status["disruptionsAllowed"] == 0
    assert status["conditions"][0]["reason"] == "InsufficientPods"

    code, body = await refused(api, "web-1")
    assert code == 429
    assert body["reason"] == "TooManyRequests" and body["message"] == VIOLATION
    assert body["details"]["causes"] == [
        {"reason": "DisruptionBudget", "message": "The disruption budget web needs 1 healthy pods and has 1 currently"}
    ]
    assert kubeapi.get_object("v1", "Pod", "web-1") is not None

    # a replacement that is running but not yet ready does not count
    await running_pod(kubeapi, "web-2", node="host-b", ready=False, app="web")
    assert (await refused(api, "web-1"))[0] == 429

    await set_phase(kubeapi, "web-2", "Running", True)
    read = await policy.read_namespaced_pod_disruption_budget("web", "default")
    assert (read.status.current_healthy, read.status.disruptions_allowed, read.status.expected_pods) == (2, 1, 2)

    await evict(api, "web-1")
    assert kubeapi.get_object("v1", "Pod", "web-1") is None
    after = budget_status(kubeapi, "web")
    assert (after["currentHealthy"], after["disruptionsAllowed"]) == (1, 0)
    assert (await refused(api, "web-2"))[0] == 429


async def test_unready_pods_and_pending_pods_are_not_protected(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    await running_pod(kubeapi, "db-1", app="db")
    await running_pod(kubeapi, "db-2", ready=False, app="db")
    await kubeapi.apply_object(pod("db-3", app="db"))  # never scheduled to run: Pending
    await kubeapi.apply_object(pdb("db", {"matchLabels": {"app": "db"}}, minAvailable=1))
    assert budget_status(kubeapi, "db")["disruptionsAllowed"] == 0

    await evict(api, "db-3")  # Pending pods ignore budgets
    await evict(api, "db-2")  # not ready, and the budget is met without it
    assert [p["metadata"]["name"] for p in kubeapi.objects("v1", "Pod")] == ["db-1"]
    assert (await refused(api, "db-1"))[0] == 429


async def test_percentages_count_the_controllers_replicas(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    """maxUnavailable 50% of a 4-replica owner: two may go, and evicted pods still count as expected."""
    await kubeapi.register_crds([REPLICATED_CRD])
    owner = await kubeapi.apply_object(
        {"apiVersion": "example.dpf.dev/v1", "kind": "Replicated", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"replicas": 4}}
    )  # fmt: skip
    ref = {"apiVersion": "example.dpf.dev/v1", "kind": "Replicated", "name": "web",
           "uid": owner["metadata"]["uid"], "controller": True}  # fmt: skip
    for i in range(4):
        body = pod(f"web-{i}", app="web")
        body["metadata"]["ownerReferences"] = [ref]
        await kubeapi.apply_object(body)
        await set_phase(kubeapi, f"web-{i}", "Running", True)
    await kubeapi.apply_object(pdb("web", {"matchLabels": {"app": "web"}}, maxUnavailable="50%"))
    status = budget_status(kubeapi, "web")
    assert (status["expectedPods"], status["desiredHealthy"], status["disruptionsAllowed"]) == (4, 2, 2)

    await evict(api, "web-0")
    await evict(api, "web-1")
    code, body = await refused(api, "web-2")
    assert code == 429
    assert body["details"]["causes"][0]["message"] == (
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    )
    assert budget_status(kubeapi, "web")["expectedPods"] == 4


async def test_max_unavailable_without_a_controller_allows_nothing(
    kubeapi: KubeApiServer, api: client.ApiClient
) -> None:
    await running_pod(kubeapi, "bare", app="bare")
    await kubeapi.apply_object(pdb("bare", {"matchLabels": {"app": "bare"}}, maxUnavailable=1))
    cond = budget_status(kubeapi, "bare")["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", "SyncFailed")
    assert "found no controller ref for pod 'bare'" in cond["message"]
    assert (await refused(api, "bare"))[0] == 429


async def test_two_budgets_for_one_pod_are_an_internal_error(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    await running_pod(kubeapi, "x", app="x", tier="front")
    await kubeapi.apply_object(pdb("by-app", {"matchLabels": {"app": "x"}}, maxUnavailable=1))
    await kubeapi.apply_object(pdb("everything", {}, minAvailable=0))  # an empty selector selects every pod
    code, body = await refused(api, "x")
    assert code == 500 and body["reason"] == "InternalError"
    assert body["message"] == (
        "Internal error occurred: This pod has more than one PodDisruptionBudget, "
        "which the eviction subresource does not support."
    )
    # a budget without a selector selects nothing
    await kubeapi.delete_object("policy/v1", "PodDisruptionBudget", "by-app")
    await kubeapi.apply_object(pdb("nothing", None, minAvailable=5))
    assert budget_status(kubeapi, "nothing")["expectedPods"] == 0
    await evict(api, "x")


async def test_dry_run_eviction_keeps_the_pod(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    await running_pod(kubeapi, "p")
    await client.CoreV1Api(api).create_namespaced_pod_eviction("p", "default", eviction("p"), dry_run="All")
    assert kubeapi.get_object("v1", "Pod", "p") is not None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"minAvailable": 1, "maxUnavailable": 1}, "minAvailable and maxUnavailable cannot be both set"),
        ({"minAvailable": -1}, "spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"),
        ({"maxUnavailable": "half"}, "must be an integer or percentage (e.g '5%')"),
        ({"maxUnavailable": "150%"}, 'spec.maxUnavailable: Invalid value: "150%": must not be greater than 100%'),
        ({"minAvailable": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
         'spec.selector.matchExpressions[0].operator: Invalid value: "Near": not a valid selector operator'),
    ],
)  # fmt: skip
async def test_invalid_budgets_are_rejected(
    kubeapi: KubeApiServer, api: client.ApiClient, spec: dict[str, Any], message: str
) -> None:
    body = pdb("bad", None)
    body["spec"] = spec
    with pytest.raises(ApiException) as e:
        await client.PolicyV1Api(api).create_namespaced_pod_disruption_budget("default", body)
    assert e.value.status == 422
    assert message in json.loads(e.value.body)["message"]
    assert kubeapi.objects("policy/v1", "PodDisruptionBudget") == []


async def test_budget_update_is_validated_and_recomputes_the_status(
    kubeapi: KubeApiServer, api: client.ApiClient
) -> None:
    await running_pod(kubeapi, "a", app="a")
    await running_pod(kubeapi, "b", app="a")
    policy = client.PolicyV1Api(api)
    await policy.create_namespaced_pod_disruption_budget("default", pdb("a", {"matchLabels": {"app": "a"}},
                                                                        minAvailable=2))  # fmt: skip
    assert budget_status(kubeapi, "a")["disruptionsAllowed"] == 0
    with pytest.raises(ApiException) as e:
        await policy.patch_namespaced_pod_disruption_budget("a", "default", {"spec": {"maxUnavailable": 1}})
    assert e.value.status == 422
    patched = await policy.patch_namespaced_pod_disruption_budget("a", "default", {"spec": {"minAvailable": 1}})
    assert patched.metadata.generation == 2
    await eventually(lambda: budget_status(kubeapi, "a").get("observedGeneration") == 2, what="status for gen 2")
    assert budget_status(kubeapi, "a")["disruptionsAllowed"] == 1


async def test_a_watch_sees_the_budget_status_follow_the_pods(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    await running_pod(kubeapi, "a", ready=False, app="a")
    await kubeapi.apply_object(pdb("a", {"matchLabels": {"app": "a"}}, minAvailable=0))
    policy = client.PolicyV1Api(api)
    since = (await policy.list_namespaced_pod_disruption_budget("default")).metadata.resource_version
    await set_phase(kubeapi, "a", "Running", True)
    events = await watch_events(policy.list_namespaced_pod_disruption_budget, "default", resource_version=since,
                                timeout_seconds=5, count=1)  # fmt: skip
    assert events[0]["type"] == "MODIFIED"
    status = events[0]["object"].status
    assert (status.current_healthy, status.disruptions_allowed) == (1, 1)
    assert status.conditions[0].reason == "SufficientPods"


async def test_pods_by_node_and_node_cordon_and_taints(kubeapi: KubeApiServer, api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    for name, node in (("p1", "host-a"), ("p2", "host-b"), ("p3", "host-a")):
        await kubeapi.apply_object(pod(name, node=node))
    on_a = await core.list_pod_for_all_namespaces(field_selector="spec.nodeName=host-a")
    assert [p.metadata.name for p in on_a.items] == ["p1", "p3"]
    one = await core.list_namespaced_pod("default", field_selector="spec.nodeName=host-a,metadata.name=p3")
    assert [p.metadata.name for p in one.items] == ["p3"]

    await kubeapi.apply_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "host-a"}})
    taint = {"key": "dpu", "value": "flashing", "effect": "NoSchedule"}
    await core.patch_node("host-a", {"spec": {"unschedulable": True, "taints": [taint]}})
    node = await core.read_node("host-a")
    assert node.spec.unschedulable is True
    assert [(t.key, t.value, t.effect) for t in node.spec.taints] == [("dpu", "flashing", "NoSchedule")]


REPLICATED_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "replicateds.example.dpf.dev"},
    "spec": {
        "group": "example.dpf.dev",
        "names": {"kind": "Replicated", "plural": "replicateds", "singular": "replicated"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
            }
        ],
    },
}
