"""metav1.Condition, and helpers to set one the way Kubernetes controllers do."""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ConditionStatus = Literal["True", "False", "Unknown"]


_stamp: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """The current time, to the second, as Kubernetes writes timestamps. Formatted once per second: reports
    and conditions ask for it on every write."""
    global _stamp
    second = int(time.time())
    if second != _stamp[0]:
        _stamp = (second, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second)))
    return _stamp[1]


class Condition(BaseModel):
    """Same fields and JSON names as metav1.Condition."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    type: str = Field(pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9_\-.]+$",
                      max_length=316)  # fmt: skip
    status: ConditionStatus
    observedGeneration: int | None = Field(default=None, ge=0)
    lastTransitionTime: str = Field(default_factory=now_rfc3339)
    reason: str = Field(default="", max_length=1024)
    message: str = Field(default="", max_length=32768)


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """Return `conditions` with `new` in place of its type; keep lastTransitionTime if status is unchanged."""
    out: list[Condition] = []
    replaced = False
    for c in conditions:
        if c.type == new.type:
            if c.status == new.status:
                new = new.model_copy(update={"lastTransitionTime": c.lastTransitionTime})
            out.append(new)
            replaced = True
        else:
            out.append(c)
    if not replaced:
        out.append(new)
    return out


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)
