"""Beyond DPF: a DPUService change rolls across DPU clusters under its maxUnavailable budget. Several emulated DPU
clusters, the test playing ArgoCD on command, and a watch on every Application write that checks, at every state
the API passed through, that no more than the budget of Applications carry the new spec without being Synced and
Healthy on it. A controller restart in the middle continues the rollout without overspending the budget."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services_harness import SVC, ServiceEnv, env, operator_config

from controller.kube.informer import EventType
from controller.kube.objects import Obj, name_of
from controller.services.rollout import available
from tests.waiting import eventually

__all__ = ["env"]  # fixture

TENANT = "tenant-r"


def dpuservice(tag: str, max_unavailable: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "hbn", "namespace": TENANT}
    if max_unavailable is not None:
        meta["annotations"] = {"svc.dpu.nvidia.com/max-unavailable": max_unavailable}
    spec = {"helmChart": {"source": {"repoURL": "oci://ghcr.io/nvidia/dpf", "chart": "hbn", "version": "1.0.0"},
                          "values": {"config": {"tag": tag}}}}  # fmt: skip
    return {"apiVersion": SVC, "kind": "DPUService", "metadata": meta, "spec": spec}


def tag_of(app: Obj) -> str:
    return str(app["spec"]["source"]["helm"]["valuesObject"]["config"]["tag"])


@dataclass
class BudgetWatch:
    """Sees every Application event (in the API's order) and records how many carry `tag` while unavailable."""

    tag: str
    apps: dict[str, Obj] = field(default_factory=dict)
    most: int = 0

    def on_event(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event == "DELETED":
            self.apps.pop(name_of(obj), None)
        else:
            self.apps[name_of(obj)] = obj
        self.most = max(self.most, len(self.pending()))

    def pending(self) -> list[str]:
        return sorted(n for n, a in self.apps.items() if tag_of(a) == self.tag and not available(a))

    def settled(self) -> list[str]:
        return sorted(n for n, a in self.apps.items() if tag_of(a) == self.tag and available(a))


async def setup(env: ServiceEnv, clusters: int, max_unavailable: str | None) -> list[str]:
    await env.host.apply_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TENANT}})
    await env.host.apply_object(operator_config())
    names = [f"dc{i}" for i in range(1, clusters + 1)]
    for i, name in enumerate(names):
        await env.add_cluster(name, server=("dc1", "dc2")[i % 2])  # DPUClusters share the two emulated APIs
    await env.host.apply_object(dpuservice("v1", max_unavailable))
    apps = [f"{n}-hbn" for n in names]
    await eventually(lambda: sorted(name_of(a) for a in env.apps()) == apps, 15, "an Application per DPU cluster")
    for app in apps:  # first deployment: ArgoCD syncs them all
        await env.argocd_reports(app, "Synced", "Healthy")
    await eventually(lambda: rollout(env).get("reason") == "Complete", 10, "the first rollout complete")
    return apps


def rollout(env: ServiceEnv) -> dict[str, Any]:
    return env.condition("hbn", TENANT, "RolloutProgressing")


async def test_a_values_change_rolls_across_dpu_clusters_within_the_budget(env: ServiceEnv) -> None:
    apps = await setup(env, 5, "40%")  # 40 % of 5 Applications: 2 at a time
    strategy = (env.app("dc1-hbn") or {})["spec"]["source"]["helm"]["valuesObject"]["serviceDaemonSet"][
        "updateStrategy"
    ]
    assert strategy == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "40%"}}  # inside each cluster

    watch = BudgetWatch("v2")
    env.informers["applications"].add_handler(watch.on_event)
    for app in env.apps():
        watch.on_event("ADDED", app, None)
    await env.host.apply_object(dpuservice("v2", "40%"))

    rounds: list[list[str]] = []
    for _ in range(len(apps)):  # a round settles at least one Application
        if len(watch.settled()) == len(apps):
            break
        # ArgoCD takes its time: the controller must stop at the budget, not at whatever it has seen synced.
        expect = min(2, len(apps) - len(watch.settled()))

        def round_ready(want: int = expect) -> list[str]:
            return watch.pending() if len(watch.pending()) == want else []

        step = await eventually(round_ready, 10, f"{expect} Applications on the new spec, awaiting ArgoCD")
        if not rounds:
            cond = await eventually(lambda: "waiting: dc3-hbn, dc4-hbn, dc5-hbn" in rollout(env).get("message", "")
                                    and rollout(env), 10, "the rollout's progress in the status")  # fmt: skip
            assert cond["status"] == "True" and cond["reason"] == "RollingOut"
            assert "updated: dc1-hbn, dc2-hbn" in cond["message"] and "maxUnavailable 2" in cond["message"]
            assert "previous specs: dc3=" in cond["message"]
            assert [tag_of(env.app(a) or {}) for a in apps] == ["v2", "v2", "v1", "v1", "v1"]
        rounds.append(step)
        for app in step:
            await env.argocd_reports(app, "Synced", "Healthy")

        def seen(names: list[str] = step) -> bool:
            return set(names) <= set(watch.settled())

        await eventually(seen, 10, "ArgoCD's report seen")
    assert rounds == [["dc1-hbn", "dc2-hbn"], ["dc3-hbn", "dc4-hbn"], ["dc5-hbn"]]
    assert watch.most == 2  # the budget was used, never exceeded
    done = await eventually(lambda: rollout(env).get("reason") == "Complete" and rollout(env), 10, "rollout complete")
    assert done["status"] == "False" and "spec" in done["message"] and "on 5 of 5 Applications" in done["message"]
    await eventually(lambda: env.condition("hbn", TENANT, "Ready").get("status") == "True", 10, "Ready")


async def test_a_restarted_controller_continues_the_rollout_within_the_budget(env: ServiceEnv) -> None:
    apps = await setup(env, 3, None)  # default budget: one DPU cluster at a time
    watch = BudgetWatch("v2")
    env.informers["applications"].add_handler(watch.on_event)
    for app in env.apps():
        watch.on_event("ADDED", app, None)
    await env.host.apply_object(dpuservice("v2", None))
    await eventually(lambda: watch.pending() == ["dc1-hbn"], 10, "dc1 updated first")

    work = await env.restart_work()
    await eventually(lambda: work.queue.processed > 0 and not work.busy(), 10, "the new controller reconciled")
    assert [tag_of(env.app(a) or {}) for a in apps] == ["v2", "v1", "v1"]  # dc1 is still not healthy: nothing moves
    await env.argocd_reports("dc1-hbn", "Synced", "Healthy")
    await eventually(lambda: watch.pending() == ["dc2-hbn"], 10, "the new controller moves on to dc2")
    await env.argocd_reports("dc2-hbn", "Synced", "Healthy")
    await eventually(lambda: watch.pending() == ["dc3-hbn"], 10, "then dc3")
    await env.argocd_reports("dc3-hbn", "Synced", "Healthy")
    await eventually(lambda: watch.settled() == apps, 10, "all on the new spec")
    assert watch.most == 1
    await eventually(lambda: rollout(env).get("reason") == "Complete", 10, "rollout complete")


async def test_an_unhealthy_cluster_is_updated_at_once_and_a_bad_budget_falls_back_to_one(env: ServiceEnv) -> None:
    apps = await setup(env, 3, "lots")
    assert "is not a count >= 1 or a percentage" in rollout(env)["message"]
    await env.argocd_reports("dc3-hbn", "Synced", "Degraded")  # already down: the budget cannot protect it
    await env.host.apply_object(dpuservice("v2", "lots"))
    # dc3 takes the new spec at once; it also spends the budget of one, so the healthy ones wait for it.
    await eventually(lambda: "waiting: dc1-hbn, dc2-hbn" in rollout(env).get("message", ""), 10, "dc1, dc2 held")
    assert [tag_of(env.app(a) or {}) for a in apps] == ["v1", "v1", "v2"]
    await env.argocd_reports("dc3-hbn", "Synced", "Healthy")
    await eventually(lambda: [tag_of(env.app(a) or {}) for a in apps] == ["v2", "v1", "v2"], 10, "then dc1")
