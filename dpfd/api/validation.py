"""Validation of DPF objects: schema, CEL and webhook rules, as DPF's API server applies them.

`Problem.format()` is the one-line form both `dpf-controller validate` and the emulated Kubernetes
API (its 422 message) print, so `kubectl apply` and `validate` say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from dpfd.api.defaults import apply_defaults, defaulted_view
from dpfd.api.errors import field_problems
from dpfd.api.immutability import update_problems
from dpfd.api.registry import DPF_GROUPS, KindInfo, kind_info, kinds_in_group
from dpfd.api.yamldocs import Document, line_of, load_documents

__all__ = [
    "InvalidObject",
    "Problem",
    "apply_defaults",
    "parse_object",
    "validate_documents",
    "validate_object",
    "validate_update",
]


@dataclass(frozen=True)
class Problem:
    kind: str
    namespace: str
    name: str
    path: str
    reason: str
    source: str = ""  # "file:line" or ""

    def format(self) -> str:
        """One line: "[source: ]Kind namespace/name: path: reason"; empty parts are left out."""
        out = f"{self.source}: " if self.source else ""
        if self.kind:
            who = f"{self.namespace}/{self.name}" if self.namespace else self.name
            out += f"{self.kind} {who}: " if who else f"{self.kind}: "
        if self.path:
            out += f"{self.path}: "
        return out + self.reason


class InvalidObject(ValueError):
    """parse_object's error: carries the problems; its message is their formatted lines."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(p.format() for p in problems))
        self.problems = problems


def _identity(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    kind, namespace, name = obj.get("kind"), meta.get("namespace"), meta.get("name")
    return (
        kind if isinstance(kind, str) else "",
        namespace if isinstance(namespace, str) else "",
        name if isinstance(name, str) else "",
    )


def _dpf_group(obj: dict[str, Any]) -> str | None:
    api_version = obj.get("apiVersion")
    if not isinstance(api_version, str):
        return None
    group = api_version.rpartition("/")[0]
    return group if group in DPF_GROUPS else None


def _located_problems(obj: dict[str, Any]) -> list[tuple[Problem, str]]:
    """Problems of one object, each with the path that locates it most precisely in a file."""
    group = _dpf_group(obj)
    if group is None:
        return []
    kind, namespace, name = _identity(obj)
    info = kind_info(str(obj["apiVersion"]), kind)
    if info is None:
        known = ", ".join(kinds_in_group(group))
        reason = f'no kind "{kind}" in version "{obj["apiVersion"]}" (kinds: {known})'
        return [(Problem(kind, namespace, name, "kind", reason), "kind")]
    return [
        (Problem(kind, namespace, name, path, reason), locator) for path, locator, reason in _model_problems(info, obj)
    ]


def _model_problems(info: KindInfo, obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    try:
        info.model.model_validate(obj)
    except ValidationError as exc:
        return list(field_problems(info.model, exc))
    return []


def validate_object(obj: dict[str, Any]) -> list[Problem]:
    """Problems of a DPF object as written (CRD defaults are assumed); [] for objects of other groups."""
    return [problem for problem, _ in _located_problems(obj)]


def validate_update(old: dict[str, Any], new: dict[str, Any]) -> list[Problem]:
    """validate_object(new) plus the fields that may not change from `old`."""
    problems = validate_object(new)
    if _dpf_group(new) is None:
        return problems
    kind, namespace, name = _identity(new)
    # The rules only read: views that copy nothing but the defaulted spec will do.
    changed = update_problems(kind, defaulted_view(old), defaulted_view(new))
    return problems + [Problem(kind, namespace, name, path, reason) for path, reason in changed]


def parse_object(obj: dict[str, Any]) -> BaseModel:
    """The typed model of a DPF object as stored (defaults applied); raises InvalidObject (a ValueError)."""
    group = _dpf_group(obj)
    kind, namespace, name = _identity(obj)
    info = kind_info(str(obj.get("apiVersion")), kind) if group is not None else None
    if info is None:
        reason = f"not a DPF kind: apiVersion {obj.get('apiVersion')!r}, kind {kind!r}"
        raise InvalidObject([Problem(kind, namespace, name, "", reason)])
    stored = apply_defaults(obj)
    try:
        return info.model.model_validate(stored)
    except ValidationError as exc:
        problems = [Problem(kind, namespace, name, p, r) for p, _, r in field_problems(info.model, exc)]
        raise InvalidObject(problems) from None


def _document_problems(doc: Document, source: str) -> list[Problem]:
    def at(locator: str) -> str:
        return f"{source}:{line_of(doc.node, locator)}"

    obj = doc.obj
    if not isinstance(obj, dict):
        reason = "not a Kubernetes object: expected a mapping with apiVersion and kind"
        return [Problem("", "", "", "", reason, at(""))]
    if obj.get("apiVersion") == "v1" and obj.get("kind") == "List" and isinstance(obj.get("items"), list):
        out: list[Problem] = []
        for i, item in enumerate(obj["items"]):
            item_doc = Document(item, doc.node)
            for p in _document_problems(item_doc, source):
                out.append(_relocate(p, doc, f"items[{i}]", source))
        return out
    kind, namespace, name = _identity(obj)
    missing = [field for field in ("apiVersion", "kind") if not isinstance(obj.get(field), str) or not obj[field]]
    if missing:
        return [Problem(kind, namespace, name, field, "Required value", at(field)) for field in missing]
    return [
        Problem(p.kind, p.namespace, p.name, p.path, p.reason, at(locator)) for p, locator in _located_problems(obj)
    ]


def _relocate(problem: Problem, doc: Document, prefix: str, source: str) -> Problem:
    # Items of a v1 List: find the line under items[i] instead of the List's own fields.
    line = line_of(doc.node, f"{prefix}.{problem.path}" if problem.path else prefix)
    return Problem(problem.kind, problem.namespace, problem.name, problem.path, problem.reason, f"{source}:{line}")


def validate_documents(text: str, source: str) -> list[Problem]:
    """Problems of every object in a multi-document YAML text; a syntax error is a Problem at its line."""
    docs, syntax = load_documents(text)
    problems = [p for doc in docs for p in _document_problems(doc, source)]
    if syntax is not None:
        problems.append(Problem("", "", "", "", syntax.reason, f"{source}:{syntax.line}"))
    return problems
