"""The base of every DPF model, and the Kubernetes value types that need their own schema.

Models follow the CRD semantics of the Kubernetes API server:
* types are not coerced (`"5"` is not an integer), unknown fields are errors (kubectl sends
  fieldValidation=Strict), and an explicit `null` means the field is absent;
* a field whose Python default is not None carries a CRD default: the API server fills it in
  (see `dpfd.api.defaults`) and the generated schema declares it;
* cross-field rules (DPF's CEL rules and webhook checks) live in `rules()`, which yields
  (path relative to the model, reason) pairs; all of them are reported at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from dpfd.api.quantity import QUANTITY_PATTERN, parse_quantity
from dpfd.api.text import show

RuleProblem = tuple[str, str]

# Error type the validation layer turns into one Problem per (path, reason) in ctx["problems"].
RULE_ERROR = "dpf_rule"
# Error type whose message is already a complete, Kubernetes-style reason.
INVALID_ERROR = "dpf_invalid"


def rule_error(problems: list[RuleProblem]) -> PydanticCustomError:
    summary = "; ".join(f"{p}: {r}" if p else r for p, r in problems)
    return PydanticCustomError(RULE_ERROR, "{summary}", {"summary": summary, "problems": problems})


def invalid(reason: str) -> PydanticCustomError:
    return PydanticCustomError(INVALID_ERROR, "{reason}", {"reason": reason})


def join_path(base: str, rel: str) -> str:
    if not rel:
        return base
    if not base or rel.startswith("["):
        return base + rel
    return f"{base}.{rel}"


class DPFModel(BaseModel):
    """A closed, strictly typed part of a DPF object."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _null_means_absent(cls, data: Any) -> Any:
        # Structural schemas prune nulls of non-nullable fields before validation and defaulting.
        if isinstance(data, dict) and any(v is None for v in data.values()):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @model_validator(mode="after")
    def _check_rules(self) -> Self:
        problems = list(self.rules())
        if problems:
            raise rule_error(problems)
        return self

    def rules(self) -> Iterator[RuleProblem]:
        """Cross-field rules; yields (path relative to this model, reason)."""
        return iter(())


class StatusModel(DPFModel):
    """Status is written by controllers; fields we do not model are kept rather than refused."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True, eq=False)  # identity hashing: Annotated metadata must be hashable
class K8sSchema:
    """Marks a type whose OpenAPI schema is written by hand (int-or-string, quantities, free-form)."""

    schema: dict[str, Any]


def _int_or_string(value: Any) -> int | str:
    if isinstance(value, (int, str)) and not isinstance(value, bool):
        return value
    raise invalid(f"Invalid value: {show(value)}: must be an integer or a string")


def _quantity(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise invalid(f'Invalid value: {show(value)}: a quantity must be an integer or a string like "500m"')
    try:
        parse_quantity(value)
    except ValueError:
        raise invalid(
            f'Invalid value: {show(value)}: must be a Kubernetes quantity such as "16Gi", "500m" or "2"'
        ) from None
    return value


def _free_form(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise invalid(f"Invalid value: {show(value)}: must be of type object")


_INT_OR_STRING_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
}

IntOrString = Annotated[int | str, PlainValidator(_int_or_string), K8sSchema(_INT_OR_STRING_SCHEMA)]
Quantity = Annotated[
    int | str, PlainValidator(_quantity), K8sSchema({**_INT_OR_STRING_SCHEMA, "pattern": QUANTITY_PATTERN})
]
ResourceList = dict[str, Quantity]
# Values the schema does not describe (Helm values): kept as given.
FreeForm = Annotated[
    dict[str, Any],
    PlainValidator(_free_form),
    K8sSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]
