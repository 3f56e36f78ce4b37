"""The subset of Kubernetes JSONPath that printer columns use.

`.status.phase`, `.metadata.labels.a\\.b/c`, `.spec.items[0].name`, `.items[*].name`, `['key']`, and filters
`.status.conditions[?(@.type=="Ready")].status` (with `==`, `!=`, or a bare `@.field` for "present").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


class JsonPathError(ValueError):
    pass


@dataclass(frozen=True)
class _Field:
    name: str


@dataclass(frozen=True)
class _Index:
    index: int


@dataclass(frozen=True)
class _Wildcard:
    pass


@dataclass(frozen=True)
class _Filter:
    path: tuple[str, ...]
    op: str  # "==", "!=", or "exists"
    value: Any


_Segment = _Field | _Index | _Wildcard | _Filter
_FILTER_RE = re.compile(r"^\?\(\s*@((?:\.[^.=!<>\s]+)+)\s*(?:(==|!=)\s*(.+?))?\s*\)$")


def _parse_literal(text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError as e:
        raise JsonPathError(f"unsupported filter value {text!r}") from e


@lru_cache(maxsize=512)
def parse(expr: str) -> tuple[_Segment, ...]:
    text = expr.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    segments: list[_Segment] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == ".":
            i += 1
            if text.startswith(".", i):
                raise JsonPathError(f"recursive descent is not supported: {expr!r}")
            name: list[str] = []
            while i < len(text) and text[i] not in ".[":
                if text[i] == "\\" and i + 1 < len(text):
                    i += 1
                name.append(text[i])
                i += 1
            if name == ["*"]:
                segments.append(_Wildcard())
            elif name:
                segments.append(_Field("".join(name)))
        elif c == "[":
            end = text.find("]", i)
            if end < 0:
                raise JsonPathError(f"unterminated '[' in {expr!r}")
            inner = text[i + 1 : end].strip()
            segments.append(_parse_bracket(inner, expr))
            i = end + 1
        else:
            raise JsonPathError(f"unexpected {c!r} at {i} in {expr!r}")
    return tuple(segments)


def _parse_bracket(inner: str, expr: str) -> _Segment:
    if inner == "*":
        return _Wildcard()
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return _Field(inner[1:-1])
    if inner.startswith("?"):
        m = _FILTER_RE.match(inner)
        if not m:
            raise JsonPathError(f"unsupported filter {inner!r} in {expr!r}")
        path = tuple(p for p in m.group(1).split(".") if p)
        if m.group(2) is None:
            return _Filter(path, "exists", None)
        return _Filter(path, m.group(2), _parse_literal(m.group(3)))
    try:
        return _Index(int(inner))
    except ValueError as e:
        raise JsonPathError(f"unsupported subscript [{inner}] in {expr!r}") from e


def _lookup(value: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for p in path:
        if not isinstance(value, dict) or p not in value:
            return False, None
        value = value[p]
    return True, value


def _filter_matches(item: Any, f: _Filter) -> bool:
    found, value = _lookup(item, f.path)
    if f.op == "exists":
        return found
    if f.op == "==":
        return found and value == f.value
    return not found or value != f.value


def find(obj: Any, expr: str) -> list[Any]:
    """Every value `expr` selects in `obj` (empty when nothing matches)."""
    nodes = [obj]
    for seg in parse(expr):
        out: list[Any] = []
        for node in nodes:
            if isinstance(seg, _Field):
                if isinstance(node, dict) and seg.name in node:
                    out.append(node[seg.name])
            elif isinstance(seg, _Index):
                if isinstance(node, list) and -len(node) <= seg.index < len(node):
                    out.append(node[seg.index])
            elif isinstance(seg, _Wildcard):
                if isinstance(node, list):
                    out.extend(node)
                elif isinstance(node, dict):
                    out.extend(node.values())
            elif isinstance(node, list):
                out.extend(item for item in node if _filter_matches(item, seg))
        nodes = out
    return nodes
