"""Pydantic validation errors, rewritten as Kubernetes field paths and API-server style reasons."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from dpfd.api.base import INVALID_ERROR, RULE_ERROR, join_path
from dpfd.api.text import show
from dpfd.api.typewalk import is_literal, is_map, item_type, model_class, unwrap

# (path shown to the user, path of the exact spot for locating it in a file, reason)
FieldProblem = tuple[str, str, str]

_TYPE_NAMES = {
    "string_type": "string",
    "int_type": "integer",
    "int_from_float": "integer",
    "int_parsing": "integer",
    "bool_type": "boolean",
    "bool_parsing": "boolean",
    "float_type": "number",
    "list_type": "array",
    "dict_type": "object",
    "model_type": "object",
    "model_attributes_type": "object",
}


def field_path(root: type[BaseModel], loc: tuple[str | int, ...]) -> tuple[str, Any]:
    """`spec.nvconfig[0].device` for a pydantic loc (indexes and map keys in brackets), and the leaf type."""
    path = ""
    tp: Any = root
    for elem in loc:
        base, _ = unwrap(tp)
        model = model_class(base)
        if isinstance(elem, int):
            path += f"[{elem}]"
            tp = item_type(base)
        elif elem == "[key]":
            continue  # pydantic's marker for an error in a map key rather than its value
        elif model is not None:
            field = model.model_fields.get(elem)
            path = join_path(path, elem)
            tp = field.annotation if field is not None else Any
        elif is_map(base):
            path += f"[{elem}]"
            tp = item_type(base)
        else:
            path = join_path(path, elem)
            tp = Any
    return path, tp


def _size_noun(field_type: str) -> str:
    return "properties" if field_type.lower().startswith("dict") else "items"


# pydantic's numeric bound errors: the relation, and the ctx key holding the bound.
_BOUNDS = {
    "greater_than_equal": ("greater than or equal to", "ge"),
    "less_than_equal": ("less than or equal to", "le"),
    "greater_than": ("greater than", "gt"),
    "less_than": ("less than", "lt"),
}


def reason_for(error: Any, leaf: Any) -> str:
    kind: str = error["type"]
    value = error.get("input")
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind == "missing":
        return "Required value"
    if kind == INVALID_ERROR:
        return str(ctx["reason"])
    if kind in _TYPE_NAMES:
        return (
            "Required value" if value is None else f"Invalid value: {show(value)}: must be of type {_TYPE_NAMES[kind]}"
        )
    if kind == "literal_error":
        base, _ = unwrap(leaf)
        allowed = get_args(base) if is_literal(base) else ()
        listed = ", ".join(show(a) for a in allowed) or ctx.get("expected", "")
        return f"Unsupported value: {show(value)}: supported values: {listed}"
    if kind == "string_pattern_mismatch":
        return f"Invalid value: {show(value)}: should match '{ctx['pattern']}'"
    if kind in _BOUNDS:
        relation, bound = _BOUNDS[kind]
        return f"Invalid value: {show(value)}: should be {relation} {ctx[bound]}"
    if kind == "string_too_short":
        return f"Invalid value: {show(value)}: should be at least {ctx['min_length']} chars long"
    if kind == "string_too_long":
        return f"Too long: may not be more than {ctx['max_length']} chars, got {len(str(value))}"
    if kind == "too_short":
        noun = _size_noun(str(ctx.get("field_type", "")))
        return f"Invalid value: {ctx.get('actual_length')}: should have at least {ctx['min_length']} {noun}"
    if kind == "too_long":
        noun = _size_noun(str(ctx.get("field_type", "")))
        return f"Too many: {ctx.get('actual_length')}: must have at most {ctx['max_length']} {noun}"
    return f"Invalid value: {show(value)}: {error.get('msg', 'invalid')}"


def field_problems(root: type[BaseModel], exc: ValidationError) -> Iterator[FieldProblem]:
    """One (path, locator, reason) per distinct problem, in the order pydantic found them."""
    seen: set[tuple[str, str]] = set()
    for error in exc.errors(include_url=False):
        path, leaf = field_path(root, tuple(error["loc"]))
        for item in _expand(error, path, leaf):
            if (item[0], item[2]) not in seen:
                seen.add((item[0], item[2]))
                yield item


def _expand(error: Any, path: str, leaf: Any) -> Iterator[FieldProblem]:
    if error["type"] == RULE_ERROR:
        for rel, reason in error["ctx"]["problems"]:
            full = join_path(path, rel)
            yield full, full, reason
    elif error["type"] == "extra_forbidden":
        name = str(error["loc"][-1])
        parent = path[: -len(name)].rstrip(".") if path.endswith(name) else path
        yield parent, path, f'unknown field "{name}" (rejected by strict field validation)'
    else:
        yield path, path, reason_for(error, leaf)
