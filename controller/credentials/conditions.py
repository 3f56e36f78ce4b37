"""The request's conditions and status as DPF writes them: ServiceAccountReconciled and SecretReconciled
(reason Success, or Error with "Error occurred: ..."), and the Ready summary of pkg/conditions SetSummary."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from controller.credentials.resources import COND_READY
from controller.kube.objects import Obj, generation_of
from dpfd.api.conditions import Condition, set_condition

REASON_SUCCESS = "Success"
REASON_ERROR = "Error"
REASON_PENDING = "Pending"
MESSAGE_NOT_READY = "The following conditions are not ready"
# SetSummary's severities; a reason it does not know (Error) leaves the summary's reason as it is.
_SEVERITY = {"AwaitingDeletion": 3, "Failure": 2, "Retrying": 1, REASON_PENDING: 1}


def true(type_: str, generation: int) -> Condition:
    return Condition(type=type_, status="True", reason=REASON_SUCCESS, message="", observedGeneration=generation)


def error(type_: str, generation: int, problem: str) -> Condition:
    return Condition(type=type_, status="False", reason=REASON_ERROR, message=f"Error occurred: {problem}",
                     observedGeneration=generation)  # fmt: skip


def _severer(first: str, second: str) -> str:
    a, b = _SEVERITY.get(first), _SEVERITY.get(second)
    if a is None and b is None:
        return REASON_PENDING
    if a is None:
        return second
    if b is None:
        return first
    return first if a > b else second


def summary(conditions: list[Condition], generation: int) -> Condition:
    """Ready: True when every other condition is; else False, listing those that are not."""
    not_ready = [c for c in conditions if c.type != COND_READY and c.status != "True"]
    if not not_ready:
        return true(COND_READY, generation)
    reason = REASON_PENDING
    for c in not_ready:
        reason = _severer(reason, c.reason)
    message = MESSAGE_NOT_READY + ":" + "".join(f"\n* {c.type}" for c in not_ready)
    return Condition(type=COND_READY, status="False", reason=reason, message=message, observedGeneration=generation)


def status_patch(obj: Obj, conditions: list[Condition], fields: dict[str, Any]) -> dict[str, Any] | None:
    """The status to write: `conditions` merged into the object's (then the Ready summary), observedGeneration
    and `fields` (None removes one); None when the status is already so."""
    current = obj.get("status") or {}
    merged: list[Condition] = []
    for raw in current.get("conditions") or []:
        try:
            merged.append(Condition.model_validate(raw))
        except ValidationError:
            continue
    for cond in conditions:
        merged = set_condition(merged, cond)
    merged = set_condition(merged, summary(merged, generation_of(obj)))
    merged = sorted(merged, key=lambda c: c.type != COND_READY)  # Ready first, the rest as they were
    wanted: dict[str, Any] = {
        "conditions": [c.model_dump(mode="json", exclude_none=True) for c in merged],
        "observedGeneration": generation_of(obj),
        **fields,
    }
    if all(current.get(k) == v for k, v in wanted.items()):
        return None
    return wanted
