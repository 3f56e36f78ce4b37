"""One pass of a drain: evict every pod on a Node that has to go, through the Eviction API, as kubectl drain does.

DaemonSet pods and mirror (static) pods stay: their controllers would put them straight back. A pod whose
PodDisruptionBudget allows no disruption answers 429; it is left for the next pass and its budget reported.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from controller.kube.client import ApiError, KubeClient
from controller.kube.objects import Obj, annotations_of, is_deleting, meta
from controller.kube.resources import PODS

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
# The eviction subresource's cause: "The disruption budget <name> needs 1 healthy pods and has 1 currently"
_BUDGET_CAUSE = re.compile(r"^The disruption budget (\S+) ")


@dataclass(frozen=True)
class DrainPass:
    """What one pass saw: pods still on the node (namespace/name), the budgets holding some of them, the pods
    evicted in this pass, and problems other than budgets (each names the pod)."""

    remaining: tuple[str, ...]
    blocked_by: tuple[str, ...]
    evicted: tuple[str, ...]
    problems: tuple[str, ...]

    @property
    def drained(self) -> bool:
        return not self.remaining


def stays_on_node(pod: Obj) -> bool:
    """DaemonSet-owned and mirror pods are not drained."""
    if MIRROR_ANNOTATION in annotations_of(pod):
        return True
    return any(r.get("controller") and r.get("kind") == "DaemonSet" for r in meta(pod).get("ownerReferences") or [])


def pod_key(pod: Obj) -> str:
    return f"{meta(pod).get('namespace', '')}/{meta(pod).get('name', '')}"


def _budgets_named(e: ApiError, namespace: str) -> list[str]:
    names = []
    for cause in e.details.get("causes") or []:
        if cause.get("reason") == "DisruptionBudget" and (m := _BUDGET_CAUSE.match(str(cause.get("message", "")))):
            names.append(f"{namespace}/{m.group(1)}")
    return names


@dataclass(frozen=True)
class _Outcome:
    evicted: bool = False
    blocked_by: tuple[str, ...] = ()
    problem: str | None = None


class Evictor:
    """Evicts the pods of a Node; `grace_period_seconds` is passed to each eviction (None: the pod's own)."""

    def __init__(self, client: KubeClient, grace_period_seconds: int | None = None) -> None:
        self._client = client
        self._grace = grace_period_seconds

    async def pods_to_drain(self, node: str) -> list[Obj]:
        pods, _ = await self._client.list(PODS, field_selector=f"spec.nodeName={node}")
        return [p for p in pods if not stays_on_node(p)]

    async def _evict(self, pod: Obj) -> _Outcome:
        ns, name = str(meta(pod).get("namespace", "")), str(meta(pod).get("name", ""))
        body: Obj = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}}
        options: Obj = {"preconditions": {"uid": meta(pod).get("uid")}}  # not a pod that took its name since
        if self._grace is not None:
            options["gracePeriodSeconds"] = self._grace
        body["deleteOptions"] = options
        try:
            await self._client.create_subresource(PODS, ns, name, "eviction", body)
            return _Outcome(evicted=True)
        except ApiError as e:
            if e.not_found:
                return _Outcome(evicted=True)  # gone already
            if e.conflict and "Precondition failed" in e.message:
                return _Outcome(evicted=True)  # that pod is gone; a new one of the same name is seen next pass
            if e.status == 429:
                budgets = tuple(_budgets_named(e, ns))  # a 429 without one is the server throttling us
                return _Outcome(blocked_by=budgets, problem=None if budgets else f"pod {ns}/{name}: {e.message}")
            return _Outcome(problem=f"pod {ns}/{name}: {e.status} {e.reason}: {e.message}")

    async def drain_pass(self, node: str) -> DrainPass:
        """Evict what can go now; a pass that evicted everything looks again, for pods still terminating."""
        pods = await self.pods_to_drain(node)
        to_evict = [p for p in pods if not is_deleting(p)]
        outcomes = await asyncio.gather(*(self._evict(p) for p in to_evict))
        evicted = tuple(pod_key(p) for p, o in zip(to_evict, outcomes, strict=True) if o.evicted)
        blocked = sorted({b for o in outcomes for b in o.blocked_by})
        problems = tuple(o.problem for o in outcomes if o.problem)
        if evicted:
            pods = await self.pods_to_drain(node)
        remaining = tuple(sorted(pod_key(p) for p in pods))
        return DrainPass(remaining, tuple(blocked), evicted, problems)
