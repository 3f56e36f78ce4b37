"""Admission for the DPF groups: defaults and validation by the project's own models (dpfd.api.validation).

The API answers a rejected object with 422 Invalid whose message is the same lines `dpf-controller validate`
prints (see `rejection` for why it carries no details).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from dpfd.api.jsontree import copy_json
from dpfd.sim.kubeapi.errors import ApiError
from dpfd.sim.kubeapi.resources import ResourceType

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DPF_GROUP_SUFFIX = ".dpu.nvidia.com"


class ProblemLike(Protocol):
    def format(self) -> str: ...


class ValidationHooks(Protocol):
    """What dpfd.api.validation provides (a module satisfies this protocol)."""

    def apply_defaults(self, obj: Obj) -> Any: ...

    def validate_object(self, obj: Obj) -> Sequence[ProblemLike]: ...

    def validate_update(self, old: Obj, new: Obj) -> Sequence[ProblemLike]: ...


def is_dpf_group(group: str) -> bool:
    return group.endswith(DPF_GROUP_SUFFIX)


def rejection(problems: Sequence[ProblemLike]) -> ApiError:
    """422 Invalid whose message is the problems' lines.

    It carries no `details`: kubectl prints a 422's causes instead of its message whenever details are
    present (`The DPU "x" is invalid: spec.a: reason`), and we want it to print the lines
    `dpf-controller validate` prints (each names the object and the field path).
    """
    return ApiError(422, "Invalid", "\n".join(p.format() for p in problems))


class DpfAdmission:
    """Runs the hooks for objects of the DPF groups; other groups pass untouched."""

    def __init__(self, hooks: ValidationHooks | None = None) -> None:
        self._hooks = hooks
        self._looked_up = hooks is not None

    def _get_hooks(self) -> ValidationHooks | None:
        if not self._looked_up:
            self._looked_up = True
            try:
                self._hooks = importlib.import_module("dpfd.api.validation")
            except ModuleNotFoundError as e:
                if e.name != "dpfd.api.validation":
                    raise
                log.warning("dpfd.api.validation is not there yet: DPF objects are accepted unvalidated")
        return self._hooks

    def _defaulted(self, hooks: ValidationHooks, obj: Obj) -> Obj:
        result = hooks.apply_defaults(obj)
        return result if isinstance(result, dict) else obj

    def admit_create(self, rt: ResourceType, obj: Obj) -> Obj:
        hooks = self._get_hooks() if is_dpf_group(rt.group) else None
        if hooks is None:
            return obj
        obj = self._defaulted(hooks, obj)
        problems = list(hooks.validate_object(obj))
        if problems:
            raise rejection(problems)
        return obj

    def admit_update(self, rt: ResourceType, old: Obj, new: Obj, *, defaults: bool) -> Obj:
        hooks = self._get_hooks() if is_dpf_group(rt.group) else None
        if hooks is None:
            return new
        if defaults:
            new = self._defaulted(hooks, new)
        problems = list(hooks.validate_update(old, new))
        if problems:
            raise rejection(problems)
        return new


def apply_schema_defaults(schema: Obj | None, value: Any) -> None:
    """Fill `default`s of a CRD's structural schema into `value` in place, as the API server does."""
    if not isinstance(schema, dict):
        return
    filler = _schema_filler(schema)
    if filler is not None:
        filler(value)


# Walking a whole CRD schema for every write was a good part of a write's cost: each schema is compiled once
# into a function that visits only the parts with defaults. Schemas are never changed once registered (a CRD
# update registers new ones), so they are cached by identity; the entry keeps its schema alive.
Filler = Callable[[Any], None]
_compiled: dict[int, tuple[Obj, Filler | None]] = {}


def _schema_filler(schema: Obj) -> Filler | None:
    entry = _compiled.get(id(schema))
    if entry is not None and entry[0] is schema:
        return entry[1]
    if len(_compiled) > 1024:  # CRDs updated over and over: start afresh rather than grow
        _compiled.clear()
    filler = _compile_schema(schema)
    _compiled[id(schema)] = (schema, filler)
    return filler


def _compile_schema(schema: Obj) -> Filler | None:
    """What apply_schema_defaults does with `schema`, as one function; None when no default is beneath it."""
    props: list[tuple[str, bool, Any, Filler | None]] = []
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        child = _compile_schema(prop)
        if "default" in prop or child is not None:
            props.append((name, "default" in prop, prop.get("default"), child))
    items = schema.get("items")
    items_filler = _compile_schema(items) if isinstance(items, dict) else None
    if not props and items_filler is None:
        return None

    def fill(value: Any) -> None:
        if isinstance(value, dict):
            for name, has_default, default, child in props:
                if has_default and name not in value:
                    value[name] = copy_json(default)
                if child is not None and name in value:
                    child(value[name])
        elif isinstance(value, list) and items_filler is not None:
            for item in value:
                items_filler(item)

    return fill
