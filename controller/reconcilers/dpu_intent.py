"""What a DPU object asks of its host's dpfd: one intent, addressed to `spec.nodeName`."""

from __future__ import annotations

from typing import Any

from controller.kube.objects import (
    Obj,
    annotations_of,
    generation_of,
    is_deleting,
    labels_of,
    name_of,
    namespace_of,
    uid_of,
)
from controller.kube.resources import DPUS
from controller.refs import object_ref
from dpfd.api.intents import Intent, ObjectRef
from dpfd.api.jsontree import copy_json


def dpu_ref(namespace: str, name: str) -> ObjectRef:
    return object_ref(DPUS.kind, namespace, name)


def dpu_intent(dpu: Obj, context: dict[str, Any] | None = None) -> Intent:
    """The DPU's intent, with the `context` the controller resolved for it (see dpu_context.py). Raises
    ValueError naming the DPU when it has no `spec.nodeName`."""
    spec = dpu.get("spec") or {}
    node = str(spec.get("nodeName") or "")
    if not node:
        raise ValueError(f"DPU {namespace_of(dpu)}/{name_of(dpu)}: spec.nodeName is empty; no node to address")
    return Intent(
        node=node,
        ref=dpu_ref(namespace_of(dpu), name_of(dpu)),
        uid=uid_of(dpu),
        generation=generation_of(dpu),
        spec=copy_json(spec),  # the intent must not share the informer cache's object
        labels=labels_of(dpu),
        annotations=annotations_of(dpu),
        deleting=is_deleting(dpu),
        context=context or {},
    )
