"""Update rules: fields that may not change once set (DPF's CEL transition rules and update webhooks).

Both objects are compared as stored, i.e. after defaulting, so a defaulted value left out of an
update does not count as a change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from dpfd.api.chains import ipv4_network
from dpfd.api.text import show

Obj = dict[str, Any]
UpdateProblem = tuple[str, str]


def _get(obj: Obj, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _immutable(path: str) -> Callable[[Obj, Obj], Iterator[UpdateProblem]]:
    def check(old: Obj, new: Obj) -> Iterator[UpdateProblem]:
        before, after = _get(old, path), _get(new, path)
        if before != after:
            yield path, f"Invalid value: {show(after)}: field is immutable"

    return check


def _immutable_once_set(path: str) -> Callable[[Obj, Obj], Iterator[UpdateProblem]]:
    def check(old: Obj, new: Obj) -> Iterator[UpdateProblem]:
        before, after = _get(old, path), _get(new, path)
        if before not in (None, "") and before != after:
            yield path, f"Invalid value: {show(after)}: field is immutable once set (was {show(before)})"

    return check


def _dpuflavor_spec(old: Obj, new: Obj) -> Iterator[UpdateProblem]:
    before, after = old.get("spec") or {}, new.get("spec") or {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            yield f"spec.{key}", "Forbidden: a DPUFlavor's spec is immutable; create a new DPUFlavor instead"


def _ipam_no_shrink(old: Obj, new: Obj) -> Iterator[UpdateProblem]:
    for block, field in (("ipv4Network", "network"), ("ipv4Subnet", "subnet")):
        path = f"spec.{block}.{field}"
        before, after = _get(old, path), _get(new, path)
        if not isinstance(before, str) or not isinstance(after, str):
            continue  # a mode switch replaces the pool, which DPF allows
        was, now = ipv4_network(before), ipv4_network(after)
        if was is not None and now is not None and not was.subnet_of(now):
            yield path, f"Invalid value: {show(after)}: may not shrink: it must contain {before}, in use"


_RULES: dict[str, tuple[Callable[[Obj, Obj], Iterator[UpdateProblem]], ...]] = {
    "BFB": (_immutable("spec.url"), _immutable("spec.fileName")),
    "DPUFlavor": (_dpuflavor_spec,),
    "DPU": (
        _immutable("spec.nodeName"),
        _immutable_once_set("spec.pciAddress"),
        _immutable_once_set("spec.cluster.name"),
        _immutable_once_set("spec.cluster.namespace"),
    ),
    "DPUCluster": (_immutable_once_set("spec.kubeconfig"),),
    "DPUServiceIPAM": (_ipam_no_shrink,),
}


def update_problems(kind: str, old: Obj, new: Obj) -> list[UpdateProblem]:
    return [p for rule in _RULES.get(kind, ()) for p in rule(old, new)]
