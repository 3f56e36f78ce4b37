"""Pure rules for the sets DPF keeps in each DPU cluster: the ServiceInterfaceSet / ServiceChainSet object as
DPF's DPUServiceInterface / DPUServiceChain controller writes it, the patches that bring an existing set there,
its status (numberApplied, numberReady, Ready and the children conditions) and the CRDs a DPU cluster needs.

DPF names the set like its parent, in the parent's namespace, with the parent's spec.template labels and
annotations and spec.template.spec as its spec; there is no ownerReference (the parent lives in another
cluster). The DPU-side set controller holds the set with its finalizer until its children are gone: here the
fan-out holds it until the dpfds released the children.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from controller.chains.desired import REASON_AWAITING_DELETION, REASON_PENDING, REASON_SUCCESS, SetNumbers
from controller.chains.family import SVC_GROUP, Family
from controller.chains.status import status_patch
from controller.kube.objects import (
    Obj,
    annotations_of,
    finalizer_patch,
    finalizers_of,
    generation_of,
    labels_of,
    name_of,
    namespace_of,
)
from dpfd.api.conditions import Condition
from dpfd.api.crds import generate_crds
from dpfd.api.jsontree import copy_json

# What DPF's operator installs in a DPU cluster for chaining: the sets and their per-Node children.
DPU_CLUSTER_KINDS = ("ServiceInterfaceSet", "ServiceInterface", "ServiceChainSet", "ServiceChain")


@cache
def dpu_cluster_crds() -> tuple[dict[str, Any], ...]:
    """The svc CRDs a DPU cluster serves for chaining (read-only: callers must not change them)."""
    return tuple(
        crd for crd in generate_crds()
        if crd["spec"]["group"] == SVC_GROUP and crd["spec"]["names"]["kind"] in DPU_CLUSTER_KINDS
    )  # fmt: skip


def set_body(family: Family, parent: Obj) -> Obj:
    """The set DPF creates in a DPU cluster for `parent` (a DPUServiceInterface or DPUServiceChain)."""
    template = (parent.get("spec") or {}).get("template") or {}
    meta = template.get("metadata") or {}
    metadata: dict[str, Any] = {
        "name": name_of(parent),
        "namespace": namespace_of(parent),
        "finalizers": [family.set_finalizer],
    }
    if meta.get("labels"):
        metadata["labels"] = dict(meta["labels"])
    if meta.get("annotations"):
        metadata["annotations"] = dict(meta["annotations"])
    return {
        "apiVersion": family.set_resource.api_version,
        "kind": family.set_kind,
        "metadata": metadata,
        "spec": copy_json(dict(template.get("spec") or {})),
    }


def merge_patch_to(current: Any, desired: Any) -> Any:
    """An RFC 7386 merge patch turning `current` into `desired` (keys only in `current` become null)."""
    if not isinstance(current, dict) or not isinstance(desired, dict):
        return copy_json(desired)
    patch: dict[str, Any] = {k: None for k in current if k not in desired}
    for k, v in desired.items():
        if k not in current:
            patch[k] = copy_json(v)
        elif current[k] != v:
            patch[k] = merge_patch_to(current[k], v)
    return patch


def set_update_patch(current: Obj, desired: Obj) -> dict[str, Any] | None:
    """The patch bringing an existing set's labels, annotations, spec and our finalizer to `desired`; None when
    it is already so. A finalizer change is guarded by resourceVersion (others may hold finalizers too)."""
    want_meta = desired.get("metadata") or {}
    patch: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for field, have in (("labels", labels_of(current)), ("annotations", annotations_of(current))):
        want = dict(want_meta.get(field) or {})
        if have != want:
            meta[field] = merge_patch_to(have, want)
    wanted_finalizers = [f for f in want_meta.get("finalizers") or [] if f not in finalizers_of(current)]
    if wanted_finalizers:
        meta.update(finalizer_patch(current, [*finalizers_of(current), *wanted_finalizers])["metadata"])
    if meta:
        patch["metadata"] = meta
    spec = current.get("spec") or {}
    if spec != desired.get("spec"):
        patch["spec"] = merge_patch_to(spec, desired.get("spec") or {})
    return patch or None


def set_conditions(family: Family, numbers: SetNumbers, generation: int, *, deleting: bool) -> list[Condition]:
    """The set's Ready summary, <children>Reconciled and <children>Ready, as DPF's set controller reports them."""

    def cond(type_: str, ok: bool, reason: str, message: str) -> Condition:
        return Condition(type=type_, status="True" if ok else "False", observedGeneration=generation, reason=reason,
                         message=message)  # fmt: skip

    applied, ready_count = numbers.numberApplied, numbers.numberReady
    if deleting:
        reconciled = cond(family.set_cond_reconciled, False, REASON_AWAITING_DELETION,
                          f"waiting for {applied} {family.child_kind}(s) to be released")  # fmt: skip
    else:
        reconciled = cond(family.set_cond_reconciled, True, REASON_SUCCESS, "")
    if numbers.not_ready:
        shown = numbers.not_ready[:10]
        more = len(numbers.not_ready) - len(shown)
        message = f"{ready_count} of {applied} {family.child_kind}(s) ready; " + "; ".join(shown)
        ready = cond(family.set_cond_ready, False, REASON_PENDING, message + (f"; and {more} more" if more else ""))
    else:
        ready = cond(family.set_cond_ready, True, REASON_SUCCESS, "")
    summary = next((c for c in (reconciled, ready) if c.status != "True"), None)
    if summary is None:
        top = cond("Ready", True, REASON_SUCCESS, "")
    else:
        top = cond("Ready", False, summary.reason, f"{summary.type}: {summary.message}")
    return [top, reconciled, ready]


def set_status_patch(family: Family, current: Obj, numbers: SetNumbers, *, deleting: bool) -> dict[str, Any] | None:
    """The set's status to write (numbers as fields, conditions at the set's own generation), or None."""
    conditions = set_conditions(family, numbers, generation_of(current), deleting=deleting)
    counts = {"numberApplied": numbers.numberApplied, "numberReady": numbers.numberReady}
    return status_patch(current, conditions, counts)
