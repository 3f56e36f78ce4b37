"""The status patch the fan-out writes, on the host's DPUService* objects and on the DPU clusters' sets."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from controller.kube.objects import Obj, generation_of
from dpfd.api.conditions import Condition, set_condition


def status_patch(obj: Obj, conditions: list[Condition], extra: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The status to write (conditions merged as Kubernetes controllers do, observedGeneration, and the `extra`
    fields), or None when it is already so."""
    current = obj.get("status") or {}
    merged: list[Condition] = []
    for raw in current.get("conditions") or []:
        try:
            merged.append(Condition.model_validate(raw))
        except ValidationError:
            continue  # not a condition we can keep
    for cond in conditions:
        merged = set_condition(merged, cond)
    wanted: dict[str, Any] = {
        "conditions": [c.model_dump(mode="json", exclude_none=True) for c in merged],
        "observedGeneration": generation_of(obj),
        **(extra or {}),
    }
    if all(current.get(k) == v for k, v in wanted.items()):
        return None
    return wanted
