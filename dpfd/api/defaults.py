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
from dpfd.api.jsontree import copy_json
from dpfd.api.registry import DPF_GROUPS, kind_info
from dpfd.api.typewalk import is_list, is_map, item_type, model_class, unwrap

Obj = dict[str, Any]
NO_DEFAULT = object()


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


# Defaulting walks the type annotations of every object written. Reading annotations (unwrap, get_origin) for
# each value is most of that cost, so each type is compiled once into a function that fills a value in place.
Filler = Callable[[Any], None]


def _nested_types(tp: Any) -> list[Any]:
    """The models, lists and maps directly beneath `tp` (what fill_schema_defaults would descend into)."""
    base, _ = unwrap(tp)
    model = model_class(base)
    if model is not None:
        return [annotation for _, _, annotation in _plan(model)]
    if is_list(base) or is_map(base):
        return [item_type(base)]
    return []


@functools.cache
def _has_defaults(model: type[BaseModel]) -> bool:
    """Whether any model reachable from `model` (itself included) declares a default."""
    seen: set[type[BaseModel]] = set()
    todo: list[Any] = [model]
    while todo:
        tp = todo.pop()
        found = model_class(unwrap(tp)[0])
        if found is not None:
            if found in seen:
                continue
            seen.add(found)
            if any(default is not NO_DEFAULT for _, default, _ in _plan(found)):
                return True
        todo.extend(_nested_types(tp))
    return False


@functools.cache
def _model_plan(model: type[BaseModel]) -> tuple[tuple[str, Any, Filler | None], ...]:
    """The fields of `model` that defaulting touches: (field, default or NO_DEFAULT, filler of its value)."""
    out = []
    for name, default, annotation in _plan(model):
        filler = _compile(annotation)
        if default is not NO_DEFAULT or filler is not None:
            out.append((name, default, filler))
    return tuple(out)


def _model_filler(model: type[BaseModel]) -> Filler:
    def fill(value: Any) -> None:
        if not isinstance(value, dict):
            return
        for name, default, filler in _model_plan(model):  # resolved at call time: models may be recursive
            if default is not NO_DEFAULT and value.get(name) is None:
                value[name] = copy_json(default)
            if filler is not None and name in value:
                filler(value[name])

    return fill


def _list_filler(inner: Filler) -> Filler:
    def fill(value: Any) -> None:
        if isinstance(value, list):
            for item in value:
                inner(item)

    return fill


def _map_filler(inner: Filler) -> Filler:
    def fill(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                inner(item)

    return fill


_compiled: dict[Any, Filler | None] = {}


def _compile(tp: Any) -> Filler | None:
    """fill_schema_defaults(tp, ·) as one function; None when nothing beneath `tp` has a default."""
    try:
        return _compiled[tp]
    except KeyError:
        pass
    except TypeError:  # an unhashable annotation: compile it every time
        return _compile_uncached(tp)
    filler = _compiled[tp] = _compile_uncached(tp)
    return filler


def _compile_uncached(tp: Any) -> Filler | None:
    base, _ = unwrap(tp)
    model = model_class(base)
    if model is not None:
        return _model_filler(model) if _has_defaults(model) else None
    if is_list(base) or is_map(base):
        inner = _compile(item_type(base))
        if inner is None:
            return None
        return _list_filler(inner) if is_list(base) else _map_filler(inner)
    return None


def fill_schema_defaults(tp: Any, value: Any) -> None:
    """Structural defaulting: fill absent fields of present objects, recursively, in place."""
    filler = _compile(tp)
    if filler is not None:
        filler(value)


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
    _fill_stored_form(out)
    return out


def defaulted_view(obj: Obj) -> Obj:
    """`obj` as the API server would store it, for reading only: equal to apply_defaults(obj), but only
    `spec` (all that defaulting changes) is copied; everything else is shared with `obj`."""
    out: Obj = dict(obj)
    spec = out.get("spec")
    if isinstance(spec, dict):
        out["spec"] = copy_json(spec)
    _fill_stored_form(out)
    return out


def _fill_stored_form(out: Obj) -> None:
    """Fill the defaults into `out` in place; only its `spec` is changed."""
    api_version, kind = out.get("apiVersion"), out.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return
    if api_version.rpartition("/")[0] not in DPF_GROUPS:
        return
    info = kind_info(api_version, kind)
    spec = out.get("spec")
    if info is None or not isinstance(spec, dict):
        return
    fill_schema_defaults(info.model.model_fields["spec"].annotation, spec)
    webhook = _WEBHOOKS.get(kind)
    if webhook is not None:
        webhook(out)
