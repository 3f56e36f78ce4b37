"""Rolling a DPUService change across DPU clusters under a maxUnavailable budget (pure; beyond DPF).

DPF updates every Application of a DPUService at once, so a values change (an HBN config, say) restarts the service
on every DPU at the same moment. Here an existing Application whose spec must change is only updated while fewer
than `budget` of the DPUService's Applications are unavailable; an Application is available once ArgoCD reports
it Synced and Healthy *for the spec it now carries* (status.sync.comparedTo.source equals spec.source, so a status
left over from the previous spec does not count). Applications that are already unavailable are updated without
waiting: they serve nothing the budget could protect. New Applications are created at once.

Everything the rollout needs survives a controller restart because it lives in the Applications themselves: which
spec each carries (hashed here for the status message) and ArgoCD's verdict on it. Clusters are taken in name
order, so a restarted controller picks up where the previous one stopped.

The budget is the DPUService's annotation svc.dpu.nvidia.com/max-unavailable: a count ("2") or a percentage of
the DPUService's Applications ("25%", rounded down, at least 1); default 1. Inside each DPU cluster the same value
becomes the default `serviceDaemonSet.updateStrategy` (RollingUpdate, maxUnavailable), so a chart that honours
DPF's serviceDaemonSet values replaces pods DPU by DPU as well.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from controller.kube.objects import Obj, annotations_of, name_of
from controller.services.status import (
    REASON_COMPLETE,
    REASON_ROLLING_OUT,
    ROLLOUT_PROGRESSING,
    app_state,
    cond,
)
from dpfd.api.conditions import Condition

MAX_UNAVAILABLE_ANNOTATION: Final = "svc.dpu.nvidia.com/max-unavailable"
DEFAULT_MAX_UNAVAILABLE: Final = 1
_BUDGET = re.compile(r"^([1-9][0-9]*)(%?)$")


@dataclass(frozen=True)
class Budget:
    """The parsed annotation: `value` as the DaemonSet takes it (int or "N%"); `problem` when it was unusable."""

    value: int | str = DEFAULT_MAX_UNAVAILABLE
    problem: str = ""

    def clusters(self, total: int) -> int:
        """How many of `total` Applications may be unavailable at once (at least 1, so a rollout always moves)."""
        if isinstance(self.value, int):
            return self.value
        return max(1, total * int(self.value.rstrip("%")) // 100)


def budget_of(service: Obj) -> Budget:
    raw = annotations_of(service).get(MAX_UNAVAILABLE_ANNOTATION)
    if raw is None:
        return Budget()
    match = _BUDGET.match(raw.strip())
    if match is None or (match.group(2) and int(match.group(1)) > 100):
        return Budget(problem=f"{MAX_UNAVAILABLE_ANNOTATION} {raw!r} is not a count >= 1 or a percentage 1-100%")
    return Budget(raw.strip() if match.group(2) else int(match.group(1)))


def with_update_strategy(daemonset: Mapping[str, Any], budget: Budget) -> dict[str, Any]:
    """`daemonset` (serviceDaemonSet values) with a RollingUpdate strategy under the budget, unless one is set."""
    out = dict(daemonset)
    if not out.get("updateStrategy"):
        out["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": budget.value}}
    return out


def spec_hash(app_spec: Mapping[str, Any]) -> str:
    """A short hash of an Application's spec without its destination cluster: equal for every DPU cluster on the
    same DPUService spec."""
    spec = dict(app_spec)
    spec["destination"] = {k: v for k, v in (spec.get("destination") or {}).items() if k != "name"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def available(app: Obj) -> bool:
    """ArgoCD reports the Application Synced and Healthy, compared against the source it carries now."""
    sync, health = app_state(app)
    spec_source = (app.get("spec") or {}).get("source")
    compared = (((app.get("status") or {}).get("sync") or {}).get("comparedTo") or {}).get("source")
    return sync == "Synced" and health == "Healthy" and compared == spec_source


def _cluster(app: Obj) -> str:
    return str((((app.get("spec") or {}).get("destination")) or {}).get("name") or name_of(app))


@dataclass
class RolloutPlan:
    """What to do now. `update`: Application names to bring to the desired spec; `held`: those that must wait.
    `created`: new ones; `on_desired`: already on the desired spec; `unavailable`: not available once `update` is
    applied (new and updated ones count as unavailable); `older`: cluster → spec hash of each held one."""

    desired_hash: str
    budget: int
    update: list[str] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    on_desired: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    older: dict[str, str] = field(default_factory=dict)

    @property
    def in_progress(self) -> bool:
        """Not every Application carries the desired spec and is available on it yet."""
        return bool(self.update or self.held or self.unavailable)


def plan_rollout(current: Mapping[str, Obj], desired: Mapping[str, Obj], budget: Budget) -> RolloutPlan:
    """Decide which existing Applications (`current`, by name) may move to their `desired` spec now. Names only in
    `desired` are new (created by the caller, not gated); names only in `current` are stale (deleted, not gated)."""
    names = sorted(n for n in desired if n in current)
    some = next(iter(desired.values()), None)
    plan = RolloutPlan(spec_hash(some["spec"]) if some else "", budget.clusters(len(desired)))
    unavailable = {n for n in names if not available(current[n])}
    plan.created = sorted(n for n in desired if n not in current)
    for name in names:
        app = current[name]
        if app.get("spec") == desired[name]["spec"]:
            plan.on_desired.append(name)
            continue
        if name in unavailable:
            plan.update.append(name)  # already down: updating it costs nothing
        elif len(unavailable) < plan.budget:
            plan.update.append(name)
            unavailable.add(name)
        else:
            plan.held.append(name)
            plan.older[_cluster(app)] = spec_hash(app.get("spec") or {})
    plan.unavailable = sorted(unavailable | set(plan.created))
    return plan


def rollout_message(plan: RolloutPlan, problem: str = "") -> str:
    """Who is on which spec, for the RolloutProgressing condition."""
    updated = sorted({*plan.on_desired, *plan.update, *plan.created})
    parts = [f"spec {plan.desired_hash} on {len(updated)} of {len(updated) + len(plan.held)} Applications"]
    if updated:
        parts.append("updated: " + ", ".join(updated))
    if plan.held:
        parts.append("waiting: " + ", ".join(plan.held))
    if plan.older:
        parts.append("previous specs: " + ", ".join(f"{c}={h}" for c, h in sorted(plan.older.items())))
    if plan.unavailable:
        parts.append("not yet Synced+Healthy: " + ", ".join(plan.unavailable))
    parts.append(f"maxUnavailable {plan.budget}")
    if problem:
        parts.append(f"{problem}; using {DEFAULT_MAX_UNAVAILABLE}")
    return "; ".join(parts)


def rollout_condition(service: Obj, plan: RolloutPlan) -> Condition:
    """RolloutProgressing: True while some Application is not on the desired spec or not yet available on it."""
    message = rollout_message(plan, budget_of(service).problem)
    if plan.in_progress:
        return cond(service, ROLLOUT_PROGRESSING, True, REASON_ROLLING_OUT, message)
    return cond(service, ROLLOUT_PROGRESSING, False, REASON_COMPLETE, message)
