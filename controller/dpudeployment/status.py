"""The DPUDeployment's conditions: DPF's eleven types, each stamped with the generation it answers, and Ready
summarising them (the first one not True gives Ready its reason and message)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from controller.dpudeployment.names import (
    COND_READY,
    CONDITION_TYPES,
    REASON_PENDING,
    REASON_SUCCESS,
)
from controller.kube.objects import Obj, condition_true, key_of
from controller.kube.resources import DPUSETS
from dpfd.api.conditions import Condition


@dataclass
class Conditions:
    """What one reconcile found, condition type by condition type (types not set stay as they were)."""

    generation: int
    found: dict[str, Condition] = field(default_factory=dict)

    def true(self, type_: str, message: str = "") -> None:
        self.found[type_] = Condition(type=type_, status="True", observedGeneration=self.generation,
                                      reason=REASON_SUCCESS, message=message)  # fmt: skip

    def false(self, type_: str, reason: str, message: str) -> None:
        self.found[type_] = Condition(type=type_, status="False", observedGeneration=self.generation,
                                      reason=reason, message=message)  # fmt: skip

    def unknown(self, type_: str, message: str) -> None:
        self.found[type_] = Condition(type=type_, status="Unknown", observedGeneration=self.generation,
                                      reason=REASON_PENDING, message=message)  # fmt: skip

    def complete(self, current: Obj) -> list[Condition]:
        """Every type, in DPF's order: this reconcile's, else the object's current one, else Unknown; then Ready."""
        existing: dict[str, Condition] = {}
        for raw in (current.get("status") or {}).get("conditions") or []:
            try:
                old = Condition.model_validate(raw)
            except ValueError:
                continue
            existing[old.type] = old
        out: list[Condition] = []
        for type_ in CONDITION_TYPES[1:]:
            c = self.found.get(type_) or existing.get(type_)
            out.append(c or Condition(type=type_, status="Unknown", observedGeneration=self.generation,
                                      reason=REASON_PENDING, message=""))  # fmt: skip
        failing = next((c for c in out if c.status != "True"), None)
        if failing is None:
            top = Condition(type=COND_READY, status="True", observedGeneration=self.generation, reason=REASON_SUCCESS)
        else:
            top = Condition(type=COND_READY, status="False", observedGeneration=self.generation,
                            reason=failing.reason or REASON_PENDING,
                            message=f"{failing.type}: {failing.message}")  # fmt: skip
        return [top, *out]


def _dpuset_ready(obj: Obj) -> bool:
    """Every DPU the set counts is Ready (DPUSets have no Ready condition, only per-phase counts)."""
    stats = (obj.get("status") or {}).get("dpuStatistics") or {}
    return all(count == 0 for phase, count in stats.items() if phase != "Ready")


def not_ready(kind: str, objs: Iterable[Obj]) -> list[str]:
    """The `ns/name` of those of `objs` not Ready yet."""
    if kind == DPUSETS.kind:
        return sorted(str(key_of(o)) for o in objs if not _dpuset_ready(o))
    return sorted(str(key_of(o)) for o in objs if not condition_true(o, COND_READY))
