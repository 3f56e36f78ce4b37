"""Kubernetes metadata and selector types used inside DPF objects, with their matching semantics."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

from pydantic import ConfigDict, Field

from dpfd.api.base import DPFModel, RuleProblem
from dpfd.api.base import IntOrString as IntOrString  # re-exported: the Kubernetes value types live here too
from dpfd.api.base import Quantity as Quantity
from dpfd.api.names import (
    dns1123_label_error,
    dns1123_subdomain_error,
    label_problems,
    qualified_name_error,
)
from dpfd.api.quantity import parse_quantity as parse_quantity
from dpfd.api.text import show


class OwnerReference(DPFModel):
    model_config = ConfigDict(extra="allow")

    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    blockOwnerDeletion: bool | None = None


class ObjectMeta(DPFModel):
    """metav1.ObjectMeta. Fields not listed here (managedFields, ...) are kept as they are."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    generateName: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resourceVersion: str | None = None
    generation: int | None = None
    creationTimestamp: str | None = None
    deletionTimestamp: str | None = None
    deletionGracePeriodSeconds: int | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    ownerReferences: list[OwnerReference] | None = None
    finalizers: list[str] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        if self.name is not None:
            err = dns1123_subdomain_error(self.name)
            if err is not None:
                yield "name", f"Invalid value: {show(self.name)}: {err}"
        if self.namespace is not None:
            err = dns1123_label_error(self.namespace)
            if err is not None:
                yield "namespace", f"Invalid value: {show(self.namespace)}: {err}"
        yield from (("labels" + p, r) for p, r in label_problems(self.labels))
        for key in self.annotations or {}:
            err = qualified_name_error(key)
            if err is not None:
                yield f"annotations[{key}]", f"Invalid value: {show(key)}: {err}"


class TemplateMeta(DPFModel):
    """The labels and annotations a DPF template puts on the objects it generates."""

    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        yield from (("labels" + p, r) for p, r in label_problems(self.labels))
        for key in self.annotations or {}:
            err = qualified_name_error(key)
            if err is not None:
                yield f"annotations[{key}]", f"Invalid value: {show(key)}: {err}"


SelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist"]


class LabelSelectorRequirement(DPFModel):
    key: str
    operator: SelectorOperator
    values: list[str] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        err = qualified_name_error(self.key)
        if err is not None:
            yield "key", f"Invalid value: {show(self.key)}: {err}"
        if self.operator in ("In", "NotIn") and not self.values:
            yield "values", f"Required value: must be specified when `operator` is '{self.operator}'"
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            yield "values", f"Forbidden: may not be specified when `operator` is '{self.operator}'"


class LabelSelector(DPFModel):
    """metav1.LabelSelector: matchLabels and matchExpressions, all of which must hold."""

    matchLabels: dict[str, str] | None = None
    matchExpressions: list[LabelSelectorRequirement] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        yield from (("matchLabels" + p, r) for p, r in label_problems(self.matchLabels))


def selector_matches(selector: LabelSelector | Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Kubernetes semantics: a missing (None) selector matches nothing, an empty one matches everything."""
    if selector is None:
        return False
    sel = selector if isinstance(selector, LabelSelector) else LabelSelector.model_validate(selector)
    have = labels or {}
    for key, value in (sel.matchLabels or {}).items():
        if have.get(key) != value:
            return False
    for req in sel.matchExpressions or []:
        if not _requirement_matches(req.operator, req.key, req.values or [], have):
            return False
    return True


def _requirement_matches(operator: str, key: str, values: list[str], labels: Mapping[str, str]) -> bool:
    if operator == "In":
        return key in labels and labels[key] in values
    if operator == "NotIn":
        return key not in labels or labels[key] not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in ("Gt", "Lt"):
        # Node selectors only: a single integer value compared with the label's integer value.
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, IndexError, ValueError):
            return False
        return have > want if operator == "Gt" else have < want
    raise ValueError(f"unknown selector operator {operator!r}")


def _is_int(value: str) -> bool:
    return value.lstrip("-").isdigit()


NodeSelectorOperator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]


class NodeSelectorRequirement(DPFModel):
    key: str
    operator: NodeSelectorOperator
    values: list[str] | None = None

    def rules(self) -> Iterator[RuleProblem]:
        if self.operator in ("In", "NotIn") and not self.values:
            yield "values", f"Required value: must be specified when `operator` is '{self.operator}'"
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            yield "values", f"Forbidden: may not be specified when `operator` is '{self.operator}'"
        if self.operator in ("Gt", "Lt") and (len(self.values or []) != 1 or not _is_int((self.values or [""])[0])):
            yield "values", f"Invalid value: {show(self.values)}: must be one integer for '{self.operator}'"


class NodeSelectorTerm(DPFModel):
    matchExpressions: list[NodeSelectorRequirement] | None = None
    matchFields: list[NodeSelectorRequirement] | None = None


class NodeSelector(DPFModel):
    """corev1.NodeSelector: the node matches if any term matches."""

    nodeSelectorTerms: list[NodeSelectorTerm]


def node_selector_matches(
    selector: NodeSelector | Mapping[str, Any] | None,
    labels: Mapping[str, str] | None,
    fields: Mapping[str, str] | None = None,
) -> bool:
    """corev1 semantics: terms are ORed, a term's requirements ANDed; an empty term matches nothing."""
    if selector is None:
        return False
    sel = selector if isinstance(selector, NodeSelector) else NodeSelector.model_validate(selector)
    have, have_fields = labels or {}, fields or {}
    for term in sel.nodeSelectorTerms:
        if not term.matchExpressions and not term.matchFields:
            continue
        if all(
            _requirement_matches(r.operator, r.key, r.values or [], have) for r in term.matchExpressions or []
        ) and all(_requirement_matches(r.operator, r.key, r.values or [], have_fields) for r in term.matchFields or []):
            return True
    return False


class Taint(DPFModel):
    key: str = Field(min_length=1)
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]
    timeAdded: str | None = None

    def rules(self) -> Iterator[RuleProblem]:
        err = qualified_name_error(self.key)
        if err is not None:
            yield "key", f"Invalid value: {show(self.key)}: {err}"


class DPFObject(DPFModel):
    """A top-level DPF object; subclasses declare apiVersion, kind, metadata, spec and status."""

    def rules(self) -> Iterator[RuleProblem]:
        meta: ObjectMeta = getattr(self, "metadata")  # noqa: B009 - declared by every subclass
        if not meta.name and not meta.generateName:
            yield "metadata.name", "Required value: name or generateName is required"
