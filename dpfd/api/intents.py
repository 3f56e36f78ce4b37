"""What travels through etcd: intents (controller → a node's dpfd) and reports (dpfd → controller).

An intent carries the desired state of one object for one node; a report answers it with the
generation it observed and the fencing token under which the work was done.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dpfd.api.conditions import Condition, now_rfc3339


class ObjectRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    namespace: str
    name: str

    def path(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"


class Intent(BaseModel):
    """Desired state of one object, addressed to one node."""

    model_config = ConfigDict(extra="forbid")

    node: str
    ref: ObjectRef
    uid: str = ""
    generation: int = Field(ge=0)
    spec: dict[str, Any] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    # The object is being deleted (it has a deletionTimestamp): the node releases what it holds and reports
    # phase "Deleting"; the intent disappears once the controller has finished the deletion.
    deleting: bool = False
    # What the controller resolved for the node beyond the object itself: referenced objects (a DPU's BFB,
    # flavor, cluster join material) and its answers to the node's requests (node effect applied, the DPU's
    # Node Ready in its cluster). Changes here re-run the reconciler without a new generation.
    context: dict[str, Any] = Field(default_factory=dict)


class Report(BaseModel):
    """Observed state of one object on one node, written only by that node's dpfd."""

    model_config = ConfigDict(extra="forbid")

    node: str
    ref: ObjectRef
    uid: str = ""
    observedGeneration: int = Field(ge=0)
    phase: str = ""
    conditions: list[Condition] = Field(default_factory=list)
    fencingToken: int = Field(default=0, ge=0)
    updatedAt: str = Field(default_factory=now_rfc3339)
    details: dict[str, Any] = Field(default_factory=dict)
