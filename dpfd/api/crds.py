"""CustomResourceDefinitions (apiextensions.k8s.io/v1) generated from the models.

The schemas are structural: every node has a type (or is int-or-string / free-form), objects list
their properties, and defaults are the CRD defaults of the models (see `dpfd.api.base`).
"""

from __future__ import annotations

import inspect
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dpfd.api.base import K8sSchema
from dpfd.api.defaults import NO_DEFAULT, crd_default
from dpfd.api.jsontree import copy_json
from dpfd.api.registry import KINDS, KindInfo
from dpfd.api.typewalk import is_list, is_literal, is_map, item_type, model_class, unwrap

_SCALARS: dict[Any, str] = {str: "string", int: "integer", bool: "boolean", float: "number"}


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    """Pydantic/annotated-types constraints found in field or Annotated metadata, by name."""
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_constraints(item.metadata))
            continue
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(item, attr, None)
            if value is not None:
                found[attr] = value
    return found


def _apply_constraints(schema: dict[str, Any], constraints: dict[str, Any]) -> None:
    kind = schema.get("type")
    sizes = {"array": ("minItems", "maxItems"), "object": ("minProperties", "maxProperties")}
    low_name, high_name = sizes.get(str(kind), ("minLength", "maxLength"))
    if "min_length" in constraints:
        schema[low_name] = constraints["min_length"]
    if "max_length" in constraints:
        schema[high_name] = constraints["max_length"]
    if "pattern" in constraints:
        schema["pattern"] = constraints["pattern"]
    if "ge" in constraints:
        schema["minimum"] = constraints["ge"]
    if "gt" in constraints:
        schema["minimum"], schema["exclusiveMinimum"] = constraints["gt"], True
    if "le" in constraints:
        schema["maximum"] = constraints["le"]
    if "lt" in constraints:
        schema["maximum"], schema["exclusiveMaximum"] = constraints["lt"], True


def _description(doc: str | None) -> str:
    return inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ") if doc else ""


def type_schema(tp: Any, field: FieldInfo | None = None) -> dict[str, Any]:
    """The OpenAPI v3 schema of an annotation (and of the field that carries it)."""
    base, metadata = unwrap(tp)
    marker = next((m for m in metadata if isinstance(m, K8sSchema)), None)
    model = model_class(base)
    schema: dict[str, Any]
    if marker is not None:
        schema = copy_json(marker.schema)
    elif is_literal(base):
        values = list(get_args(base))
        schema = {"type": _SCALARS.get(type(values[0]), "string"), "enum": values}
    elif base in _SCALARS:
        schema = {"type": _SCALARS[base]}
    elif is_list(base):
        schema = {"type": "array", "items": type_schema(item_type(base))}
    elif is_map(base):
        value_type = item_type(base)
        if value_type is Any:
            schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        else:
            schema = {"type": "object", "additionalProperties": type_schema(value_type)}
    elif model is not None:
        schema = object_schema(model)
    elif base is Any:
        schema = {"x-kubernetes-preserve-unknown-fields": True}
    else:
        raise TypeError(f"no OpenAPI schema for type {base!r}")
    _apply_constraints(schema, _constraints(metadata + (field.metadata if field is not None else [])))
    if field is not None and field.description:  # the field's own words over its type's docstring
        schema = {"description": field.description, **{k: v for k, v in schema.items() if k != "description"}}
    return schema


def object_schema(model: type[BaseModel]) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, field in model.model_fields.items():
        prop = type_schema(field.annotation, field)
        if field.is_required():
            required.append(name)
        else:
            default = crd_default(model, name)
            if default is not NO_DEFAULT:
                prop["default"] = default
        properties[name] = prop
    schema: dict[str, Any] = {"type": "object"}
    description = _description(model.__doc__)
    if description:
        schema["description"] = description
    schema["properties"] = properties
    if required:
        schema["required"] = required
    if model.model_config.get("extra") == "allow":
        schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


def root_schema(info: KindInfo) -> dict[str, Any]:
    fields = info.model.model_fields
    properties: dict[str, Any] = {
        "apiVersion": {
            "type": "string",
            "description": "The versioned schema of this representation of an object.",
        },
        "kind": {"type": "string", "description": "The REST resource this object represents."},
        "metadata": {"type": "object"},
        "spec": type_schema(fields["spec"].annotation, fields["spec"]),
    }
    if "status" in fields:
        properties["status"] = type_schema(fields["status"].annotation, fields["status"])
    schema: dict[str, Any] = {"type": "object"}
    description = _description(info.model.__doc__)
    if description:
        schema["description"] = description
    schema["properties"] = properties
    if fields["spec"].is_required():
        schema["required"] = ["spec"]
    return schema


def crd_for(info: KindInfo) -> dict[str, Any]:
    names: dict[str, Any] = {
        "kind": info.kind,
        "listKind": f"{info.kind}List",
        "plural": info.plural,
        "singular": info.singular,
    }
    if info.short_names:
        names["shortNames"] = list(info.short_names)
    version: dict[str, Any] = {"name": info.version, "served": True, "storage": True}
    if "status" in info.model.model_fields:
        version["subresources"] = {"status": {}}
    if info.printer_columns:
        version["additionalPrinterColumns"] = [c.to_crd() for c in info.printer_columns]
    version["schema"] = {"openAPIV3Schema": root_schema(info)}
    scope: Literal["Namespaced", "Cluster"] = "Namespaced" if info.namespaced else "Cluster"
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.crd_name},
        "spec": {"group": info.group, "names": names, "scope": scope, "versions": [version]},
    }


def generate_crds() -> list[dict[str, Any]]:
    """One CRD per DPF kind, in registry order (provisioning, svc, operator)."""
    return [crd_for(info) for info in KINDS.values()]


def dump_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False, width=1000, allow_unicode=True)


def crd_file_name(crd: dict[str, Any]) -> str:
    return f"{crd['spec']['group']}_{crd['spec']['names']['plural']}.yaml"


def crd_files() -> dict[str, str]:
    """deploy/crds/ as it should be: file name -> content."""
    return {crd_file_name(crd): dump_yaml(crd) for crd in generate_crds()}


def crds_yaml() -> str:
    """All CRDs as one multi-document YAML text."""
    return "".join("---\n" + dump_yaml(crd) for crd in generate_crds())
