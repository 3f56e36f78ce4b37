"""Defaulting as DPF's API server does it: CRD schema defaults, then DPF's mutating webhooks.

Only `spec` is touched; metadata and status are stored as given.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from dpfd.api.base import DPFModel
from dpfd.api.registry import DPF_GROUPS, kind_info
from dpfd.api.typewalk import is_list, is_map, item_type, model_class, unwrap

Obj = dict[str, Any]
NO_DEFAULT = object()


def copy_json(value: Any) -> Any:
    """A deep copy of JSON-like data, several times faster than copy.deepcopy."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def crd_default(model: type[BaseModel], name: str) -> Any:
    """The JSON default the CRD declares for a field, or NO_DEFAULT. Python None defaults mean "absent"."""
    if not issubclass(model, DPFModel):
        return NO_DEFAULT
    field = model.model_fields[name]
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return NO_DEFAULT
    else:
        value = field.default
    if value is None:
        return NO_DEFAULT
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    return value


@functools.cache
def _plan(model: type[BaseModel]) -> tuple[tuple[str, Any, Any], ...]:
    """(field, default or NO_DEFAULT, annotation) for each field: computed once per model."""
    return tuple((name, crd_default(model, name), f.annotation) for name, f in model.model_fields.items())


def fill_schema_defaults(tp: Any, value: Any) -> None:
    """Structural defaulting: fill absent fields of present objects, recursively, in place."""
    base, _ = unwrap(tp)
    model = model_class(base)
    if model is not None:
        if not isinstance(value, dict):
            return
        for name, default, annotation in _plan(model):
            if value.get(name) is None and default is not NO_DEFAULT:
                value[name] = copy_json(default)
            if name in value:
                fill_schema_defaults(annotation, value[name])
    elif is_list(base) and isinstance(value, list):
        for item in value:
            fill_schema_defaults(item_type(base), item)
    elif is_map(base) and isinstance(value, dict):
        for item in value.values():
            fill_schema_defaults(item_type(base), item)


def _default_bfb(obj: Obj) -> None:
    # DPF's BFB webhook: the file on the BFB volume is named after the object.
    spec, meta = obj["spec"], obj.get("metadata") or {}
    name = meta.get("name")
    if spec.get("fileName") is None and isinstance(name, str) and name:
        spec["fileName"] = f"{meta.get('namespace') or 'default'}-{name}.bfb"


def _default_dpuset(obj: Obj) -> None:
    # DPF's DPUSet webhook: Recreate unless told otherwise; a rolling update takes one DPU at a time.
    spec = obj["spec"]
    strategy = spec.get("strategy")
    if strategy is None:
        spec["strategy"] = {"type": "Recreate"}
    elif isinstance(strategy, dict) and strategy.get("type") == "RollingUpdate":
        rolling = strategy.get("rollingUpdate")
        if rolling is None:
            strategy["rollingUpdate"] = {"maxUnavailable": 1}
        elif isinstance(rolling, dict) and rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1


_WEBHOOKS: dict[str, Callable[[Obj], None]] = {"BFB": _default_bfb, "DPUSet": _default_dpuset}


def apply_defaults(obj: Obj) -> Obj:
    """A copy of `obj` as the API server would store it: defaults filled in, nothing else changed."""
    out: Obj = copy_json(obj)
    api_version, kind = out.get("apiVersion"), out.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return out
    if api_version.rpartition("/")[0] not in DPF_GROUPS:
        return out
    info = kind_info(api_version, kind)
    spec = out.get("spec")
    if info is None or not isinstance(spec, dict):
        return out
    fill_schema_defaults(info.model.model_fields["spec"].annotation, spec)
    webhook = _WEBHOOKS.get(kind)
    if webhook is not None:
        webhook(out)
    return out
