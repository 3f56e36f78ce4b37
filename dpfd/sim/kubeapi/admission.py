"""Admission for the DPF groups: defaults and validation by the project's own models (dpfd.api.validation).

The API answers a rejected object with 422 Invalid whose message is the same lines `dpf-controller validate`
prints (see `rejection` for why it carries no details).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any, Protocol

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
    if isinstance(value, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if not isinstance(prop, dict):
                continue
            if name not in value and "default" in prop:
                value[name] = _copy(prop["default"])
            if name in value:
                apply_schema_defaults(prop, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_schema_defaults(schema["items"], item)


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
