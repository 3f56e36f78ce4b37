"""Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`, `>`, `<`) and field selectors."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_KEY = r"[A-Za-z0-9][-A-Za-z0-9_./]*"
_VALUE = r"[-A-Za-z0-9_.]*"
_EXISTS = re.compile(rf"^({_KEY})$")
_NOT_EXISTS = re.compile(rf"^!\s*({_KEY})$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_COMPARE = re.compile(rf"^({_KEY})\s*(<|>)\s*(-?\d+)$")


class SelectorError(ValueError):
    pass


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses (`a in (x,y),b`)."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for c in text:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


Requirement = Callable[[dict[str, str]], bool]


def _requirement(term: str) -> Requirement:
    if m := _NOT_EXISTS.match(term):
        key = m.group(1)
        return lambda labels: key not in labels
    if m := _EXISTS.match(term):
        key = m.group(1)
        return lambda labels: key in labels
    if m := _EQUALITY.match(term):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: key in labels and labels[key] == value
    if m := _SET.match(term):
        key, op = m.group(1), m.group(2)
        values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
        if op == "in":
            return lambda labels: key in labels and labels[key] in values
        return lambda labels: labels.get(key) not in values
    if m := _COMPARE.match(term):
        key, op, bound = m.group(1), m.group(2), int(m.group(3))

        def compare(labels: dict[str, str]) -> bool:
            try:
                value = int(labels[key])
            except (KeyError, ValueError):
                return False
            return value > bound if op == ">" else value < bound

        return compare
    raise SelectorError(f"unable to parse requirement: {term!r}")


@dataclass(frozen=True)
class LabelSelector:
    text: str
    requirements: tuple[Requirement, ...]

    def matches(self, obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r(labels) for r in self.requirements)


def parse_label_selector(text: str) -> LabelSelector | None:
    """None for an empty selector (everything matches)."""
    terms = _split_top_level(text)
    return LabelSelector(text, tuple(_requirement(t) for t in terms)) if terms else None


def _split_escaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for c in text:
        if escaped:
            current.append("\\" + c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def field_value(obj: dict[str, Any], path: str) -> str:
    """A field as a field selector compares it: a string, "" when absent."""
    value: Any = obj
    for p in path.split("."):
        if not isinstance(value, dict):
            return ""
        value = value.get(p)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class FieldSelector:
    """`metadata.name=x,spec.nodeName!=y`. Any dotted field path is accepted, unlike the real server."""

    text: str
    terms: tuple[tuple[str, bool, str], ...]  # (path, equal?, value)

    def matches(self, obj: dict[str, Any]) -> bool:
        return all((field_value(obj, path) == value) == equal for path, equal, value in self.terms)

    def exact(self, path: str) -> str | None:
        """The value `path` must equal, if the selector pins it (lets a get replace a list scan)."""
        for p, equal, value in self.terms:
            if p == path and equal:
                return value
        return None


def parse_field_selector(text: str) -> FieldSelector | None:
    terms: list[tuple[str, bool, str]] = []
    for raw in _split_escaped(text, ","):
        term = raw.strip()
        if not term:
            continue
        m = re.match(r"^([^=!\s]+)\s*(!=|==|=)\s*(.*)$", term)
        if not m:
            raise SelectorError(f"invalid selector: '{term}'; can't understand '{term}'")
        terms.append((m.group(1), m.group(2) != "!=", _unescape(m.group(3))))
    return FieldSelector(text, tuple(terms)) if terms else None
