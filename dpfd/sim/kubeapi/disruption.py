"""PodDisruptionBudgets as Kubernetes treats them: spec validation, the status the disruption controller keeps
(computed here from the pods of the namespace), and the eviction subresource's verdict on one pod.

Sources: pkg/apis/policy/validation, pkg/controller/disruption and pkg/registry/core/pod/storage/eviction.go.
Unlike the real controller, the status is recomputed synchronously on every pod or budget write, so an eviction
never has to wait for "the disruption budget is still being processed".
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dpfd.sim.kubeapi.errors import ApiError

Obj = dict[str, Any]
PODS = ("", "pods")
PDBS = ("policy", "poddisruptionbudgets")
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
VIOLATION_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
MULTIPLE_BUDGETS = "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
ALWAYS_ALLOW = "AlwaysAllow"
_PERCENT = re.compile(r"^(-?\d+)%$")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")

# The replicas a pod's controller wants (None when unknown): lets maxUnavailable and percentages count pods
# that are gone, as the real controller does through the scale subresource.
ReplicasOf = Callable[[Obj], int | None]


# ---- spec validation


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def _int_or_percent_problems(value: Any, path: str) -> list[tuple[str, str]]:
    """appsvalidation.ValidatePositiveIntOrPercent and IsNotMoreThan100Percent."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return [(path, f"Invalid value: {_show(value)}: must be an integer or percentage (e.g '5%')")]
    if isinstance(value, str):
        m = _PERCENT.match(value)
        if m is None:
            return [(path, f"Invalid value: {_show(value)}: must be an integer or percentage (e.g '5%')")]
        percent = int(m.group(1))
        if percent < 0:
            return [(path, f"Invalid value: {percent}: must be greater than or equal to 0")]
        if percent > 100:
            return [(path, f"Invalid value: {_show(value)}: must not be greater than 100%")]
        return []
    if value < 0:
        return [(path, f"Invalid value: {value}: must be greater than or equal to 0")]
    return []


def _selector_problems(selector: Any, path: str) -> list[tuple[str, str]]:
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return [(path, "Invalid value: must be a label selector object")]
    problems: list[tuple[str, str]] = []
    labels = selector.get("matchLabels")
    if labels is not None and (not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values())):
        problems.append((f"{path}.matchLabels", "Invalid value: must map label keys to string values"))
    exprs = selector.get("matchExpressions")
    if exprs is not None and not isinstance(exprs, list):
        return [*problems, (f"{path}.matchExpressions", "Invalid value: must be a list")]
    for i, expr in enumerate(exprs or []):
        where = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, dict):
            problems.append((where, "Invalid value: must be an object"))
            continue
        op, values = expr.get("operator"), expr.get("values") or []
        if not expr.get("key"):
            problems.append((f"{where}.key", "Required value"))
        if op not in _OPERATORS:
            problems.append((f"{where}.operator", f"Invalid value: {_show(op)}: not a valid selector operator"))
        elif op in ("In", "NotIn") and not values:
            problems.append((f"{where}.values", "Required value: must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist") and values:
            problems.append(
                (f"{where}.values", "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'")
            )
    return problems


def spec_problems(pdb: Obj) -> list[tuple[str, str]]:
    """(field path, message) for every rule of ValidatePodDisruptionBudgetSpec the budget breaks."""
    spec = pdb.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        return [("spec", "Invalid value: must be an object")]
    problems: list[tuple[str, str]] = []
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    if min_available is not None and max_unavailable is not None:
        problems.append(
            (
                "spec",
                f"Invalid value: {{minAvailable: {min_available}, maxUnavailable: {max_unavailable}}}: "
                "minAvailable and maxUnavailable cannot be both set",
            )
        )
    if min_available is not None:
        problems += _int_or_percent_problems(min_available, "spec.minAvailable")
    if max_unavailable is not None:
        problems += _int_or_percent_problems(max_unavailable, "spec.maxUnavailable")
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in ("IfHealthyBudget", ALWAYS_ALLOW):
        problems.append(
            (
                "spec.unhealthyPodEvictionPolicy",
                f'Unsupported value: {_show(policy)}: supported values: "AlwaysAllow", "IfHealthyBudget"',
            )
        )
    return problems + _selector_problems(spec.get("selector"), "spec.selector")


# ---- selection and health


def selects(pdb: Obj, pod: Obj) -> bool:
    """policy/v1: a null selector selects nothing, an empty one every pod of the namespace."""
    selector = (pdb.get("spec") or {}).get("selector")
    if not isinstance(selector, dict):
        return False
    labels = (pod.get("metadata") or {}).get("labels") or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def is_ready(pod: Obj) -> bool:
    """podutil.IsPodReady: the Ready condition is True."""
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


def _deleting(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def _scaled(value: Any, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent, rounding up (as the disruption controller asks)."""
    if isinstance(value, str):
        m = _PERCENT.match(value)
        return math.ceil(int(m.group(1)) * total / 100) if m else 0
    return int(value)


def _controller_uid(pod: Obj) -> str | None:
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid") or "")
    return None


def _expected_scale(pods: list[Obj], replicas_of: ReplicasOf) -> int:
    """The sum of the replicas of the pods' controllers; raises ValueError as the controller's failSafe does."""
    wanted: dict[str, int] = {}
    for pod in pods:
        uid = _controller_uid(pod)
        name = (pod.get("metadata") or {}).get("name", "")
        if not uid:
            raise ValueError(f"found no controller ref for pod {name!r}")
        if uid not in wanted:
            replicas = replicas_of(pod)
            if replicas is None:
                raise ValueError(f"found no controllers for pod {name!r}")
            wanted[uid] = replicas
    return sum(wanted.values())


def _condition(old: Obj | None, allowed: bool, reason: str, message: str, generation: int, now: str) -> Obj:
    status = "True" if allowed else "False"
    old_cond = next((c for c in (old or {}).get("conditions") or [] if c.get("type") == "DisruptionAllowed"), None)
    since = old_cond.get("lastTransitionTime") if old_cond and old_cond.get("status") == status else None
    return {
        "type": "DisruptionAllowed",
        "status": status,
        "observedGeneration": generation,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since or now,
    }


def compute_status(pdb: Obj, namespace_pods: Iterable[Obj], replicas_of: ReplicasOf, now: str) -> Obj:
    """The status the disruption controller would write for `pdb` given the namespace's pods."""
    spec = pdb.get("spec") or {}
    old = pdb.get("status") or {}
    generation = int((pdb.get("metadata") or {}).get("generation") or 1)
    pods = [p for p in namespace_pods if selects(pdb, p)]
    min_available, max_unavailable = spec.get("minAvailable"), spec.get("maxUnavailable")
    try:
        if max_unavailable is not None:
            expected = _expected_scale(pods, replicas_of)
            desired = max(0, expected - _scaled(max_unavailable, expected))
        elif isinstance(min_available, str):
            expected = _expected_scale(pods, replicas_of)
            desired = _scaled(min_available, expected)
        else:
            expected = len(pods)
            desired = int(min_available or 0)
    except ValueError as e:
        # failSafe: no disruption allowed until the budget can be computed again
        return {
            **{k: old[k] for k in ("currentHealthy", "desiredHealthy", "expectedPods") if k in old},
            "observedGeneration": generation,
            "disruptionsAllowed": 0,
            "conditions": [_condition(old, False, "SyncFailed", str(e), generation, now)],
        }
    healthy = sum(1 for p in pods if is_ready(p) and not _deleting(p))
    allowed = max(0, healthy - desired) if expected > 0 else 0
    reason = "SufficientPods" if allowed > 0 else "InsufficientPods"
    return {
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [_condition(old, allowed > 0, reason, "", generation, now)],
    }


# ---- the eviction subresource


@dataclass(frozen=True)
class Verdict:
    """May the pod go? `budget` names the PDB that was consulted, if any."""

    allowed: bool
    budget: str | None = None


def can_ignore_budgets(pod: Obj) -> bool:
    """eviction.go canIgnorePDB: finished, pending and already-deleting pods are evicted regardless."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or _deleting(pod)


def verdict(pod: Obj, budgets: list[Obj]) -> Verdict:
    """Whether `pod` may be evicted given the namespace's budgets (with current status); raises ApiError
    (429 with a DisruptionBudget cause, or 500 for several budgets) as the eviction subresource answers."""
    if can_ignore_budgets(pod):
        return Verdict(True)
    matching = [b for b in budgets if selects(b, pod)]
    if not matching:
        return Verdict(True)
    if len(matching) > 1:
        message = f"Internal error occurred: {MULTIPLE_BUDGETS}"
        raise ApiError(500, "InternalError", message, {"causes": [{"message": MULTIPLE_BUDGETS}]})
    pdb = matching[0]
    name = str((pdb.get("metadata") or {}).get("name", ""))
    spec, status = pdb.get("spec") or {}, pdb.get("status") or {}
    if not is_ready(pod):
        # an unhealthy pod does not count towards the budget: it may go when the budget is met anyway
        if spec.get("unhealthyPodEvictionPolicy") == ALWAYS_ALLOW:
            return Verdict(True, name)
        desired, healthy = int(status.get("desiredHealthy") or 0), int(status.get("currentHealthy") or 0)
        if healthy >= desired and desired > 0:
            return Verdict(True, name)
    if int(status.get("disruptionsAllowed") or 0) <= 0:
        cause = (
            f"The disruption budget {name} needs {int(status.get('desiredHealthy') or 0)} healthy pods "
            f"and has {int(status.get('currentHealthy') or 0)} currently"
        )
        raise ApiError(
            429,
            "TooManyRequests",
            VIOLATION_MESSAGE,
            {"causes": [{"reason": DISRUPTION_BUDGET_CAUSE, "message": cause}]},
        )
    return Verdict(True, name)
