"""The generated CRDs: committed copies up to date, structural schemas, and agreement with the models."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpfd.api.crds import crd_files, crds_yaml, generate_crds
from dpfd.api.registry import KINDS

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[3]
CRD_DIR = REPO / "deploy" / "crds"
REGENERATE = "regenerate with: .venv/bin/python -m controller.main crds --out-dir deploy/crds"


def test_committed_crds_are_up_to_date() -> None:
    expected = crd_files()
    committed = {p.name: p.read_text() for p in CRD_DIR.glob("*.yaml")}
    assert sorted(committed) == sorted(expected), REGENERATE
    for name, text in expected.items():
        assert committed[name] == text, f"deploy/crds/{name} is stale; {REGENERATE}"


def test_one_crd_per_kind_with_dpf_names() -> None:
    crds = generate_crds()
    assert len(crds) == len(KINDS) == 18
    for crd, info in zip(crds, KINDS.values(), strict=True):
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        assert crd["metadata"]["name"] == f"{info.plural}.{info.group}"
        spec = crd["spec"]
        assert spec["scope"] == "Namespaced"
        assert spec["names"]["kind"] == info.kind and spec["names"]["listKind"] == f"{info.kind}List"
        (version,) = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
        has_status = "status" in version["schema"]["openAPIV3Schema"]["properties"]
        assert (version.get("subresources") == {"status": {}}) == has_status
        assert version["additionalPrinterColumns"][-1] == {
            "name": "Age",
            "type": "date",
            "jsonPath": ".metadata.creationTimestamp",
        }
    assert {c["metadata"]["name"] for c in crds} >= {
        "bfbs.provisioning.dpu.nvidia.com",
        "dpusets.provisioning.dpu.nvidia.com",
        "dpuservices.svc.dpu.nvidia.com",
        "dpuserviceipams.svc.dpu.nvidia.com",
        "dpfoperatorconfigs.operator.dpu.nvidia.com",
    }


def _columns(kind: str) -> dict[str, str]:
    crd = next(c for c in generate_crds() if c["spec"]["names"]["kind"] == kind)
    return {c["name"]: c["jsonPath"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]}


def test_printer_columns_like_dpf() -> None:
    assert _columns("DPU") == {
        "Node": ".spec.nodeName",
        "Ready": ".status.conditions[?(@.type=='Ready')].status",
        "Phase": ".status.phase",
        "Age": ".metadata.creationTimestamp",
    }
    assert _columns("BFB")["File Name"] == ".spec.fileName"
    assert _columns("BFB")["Phase"] == ".status.phase"
    for kind in ("DPUService", "DPUDeployment", "DPUServiceIPAM", "DPUServiceChain", "DPFOperatorConfig"):
        assert _columns(kind)["Phase"] == ".status.conditions[?(@.type=='Ready')].reason", kind
        assert _columns(kind)["Ready"] == ".status.conditions[?(@.type=='Ready')].status", kind


def test_crds_yaml_is_deterministic_and_complete() -> None:
    text = crds_yaml()
    assert text == crds_yaml()
    assert list(yaml.safe_load_all(text)) == generate_crds()


def _schemas() -> dict[str, Obj]:
    return {c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for c in generate_crds()}


def _structural_errors(node: Any, path: str) -> list[str]:
    """The rules of a structural schema that matter here (Kubernetes: "Specifying a structural schema")."""
    if not isinstance(node, dict):
        return [f"{path}: not a schema object"]
    errors = []
    special = node.get("x-kubernetes-int-or-string") or node.get("x-kubernetes-preserve-unknown-fields")
    if "type" not in node and not special:
        errors.append(f"{path}: no type")
    for banned in ("$ref", "oneOf", "allOf", "not", "definitions", "additionalItems", "nullable"):
        if banned in node:
            errors.append(f"{path}: {banned} is not allowed")
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        errors.append(f"{path}: anyOf outside int-or-string")
    if "properties" in node and "additionalProperties" in node:
        errors.append(f"{path}: both properties and additionalProperties")
    if node.get("type") == "array" and "items" not in node:
        errors.append(f"{path}: array without items")
    if "required" in node and not set(node["required"]) <= set(node.get("properties", {})):
        errors.append(f"{path}: required names unknown properties")
    for name, prop in node.get("properties", {}).items():
        errors += _structural_errors(prop, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        errors += _structural_errors(node["additionalProperties"], f"{path}[*]")
    if "items" in node:
        errors += _structural_errors(node["items"], f"{path}[]")
    return errors


@pytest.mark.parametrize("kind", sorted(info.kind for info in KINDS.values()))
def test_schemas_are_structural(kind: str) -> None:
    schema = _schemas()[kind]
    assert _structural_errors(schema, kind) == []
    assert schema["properties"]["metadata"] == {"type": "object"}  # nothing below metadata in a CRD schema
    assert schema["properties"]["spec"]["type"] == "object"


def test_schema_carries_types_defaults_and_free_form_values() -> None:
    schemas = _schemas()
    dpuset = schemas["DPUSet"]["properties"]["spec"]["properties"]
    template = dpuset["dpuTemplate"]["properties"]["spec"]["properties"]
    assert template["nodeEffect"]["default"] == {"drain": {"automaticNodeReboot": True}}
    assert template["automaticNodeReboot"] == {"type": "boolean", "default": True}
    assert dpuset["strategy"]["properties"]["type"] == {
        "type": "string",
        "enum": ["Recreate", "RollingUpdate"],
        "default": "Recreate",
    }
    unavailable = dpuset["strategy"]["properties"]["rollingUpdate"]["properties"]["maxUnavailable"]
    assert unavailable["x-kubernetes-int-or-string"] is True
    cluster = schemas["DPUCluster"]["properties"]["spec"]["properties"]
    assert cluster["maxNodes"] == {"type": "integer", "default": 1000, "minimum": 1, "maximum": 1000}
    memory = schemas["DPUFlavor"]["properties"]["spec"]["properties"]["dpuResources"]["additionalProperties"]
    assert memory["x-kubernetes-int-or-string"] is True and "pattern" in memory
    values = schemas["DPUService"]["properties"]["spec"]["properties"]["helmChart"]["properties"]["values"]
    assert values["x-kubernetes-preserve-unknown-fields"] is True and values["type"] == "object"
    networking = schemas["DPFOperatorConfig"]["properties"]["spec"]["properties"]["networking"]
    assert networking["default"] == {"controlPlaneMTU": 1500, "highSpeedMTU": 1500}
    assert networking["properties"]["highSpeedMTU"]["maximum"] == 9216
    assert schemas["BFB"]["required"] == ["spec"]
    assert schemas["BFB"]["properties"]["spec"]["required"] == ["url"]


# A small OpenAPI checker: enough to show that the CRD schemas accept what the models accept, and
# refuse what the schema part of the models refuses.
def _schema_errors(schema: Obj, value: Any, path: str = "") -> list[str]:
    if schema.get("x-kubernetes-int-or-string"):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            return [f"{path}: not int-or-string"]
        if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
            return [f"{path}: pattern"]
        return []
    kind = schema.get("type")
    checks: dict[str, type | tuple[type, ...]] = {
        "object": dict,
        "array": list,
        "string": str,
        "integer": int,
        "boolean": bool,
        "number": (int, float),
    }
    if kind is not None and (not isinstance(value, checks[kind]) or (kind == "integer" and isinstance(value, bool))):
        return [f"{path}: not {kind}"]
    errors = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: enum")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{path}: pattern")
    if "minimum" in schema and value < schema["minimum"]:
        errors.append(f"{path}: minimum")
    if "maximum" in schema and value > schema["maximum"]:
        errors.append(f"{path}: maximum")
    if kind == "object":
        props = schema.get("properties", {})
        errors += [f"{path}.{r}: required" for r in schema.get("required", []) if r not in value]
        for key, item in value.items():
            if key in props:
                errors += _schema_errors(props[key], item, f"{path}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                errors += _schema_errors(schema["additionalProperties"], item, f"{path}[{key}]")
            elif props and not schema.get("x-kubernetes-preserve-unknown-fields"):
                errors.append(f"{path}.{key}: unknown")
    if kind == "array":
        for i, item in enumerate(value):
            errors += _schema_errors(schema["items"], item, f"{path}[{i}]")
    return errors


def test_crd_schemas_accept_every_valid_manifest(manifests: dict[str, Obj]) -> None:
    schemas = _schemas()
    for key, obj in manifests.items():
        assert _schema_errors(schemas[obj["kind"]], obj) == [], key


@pytest.mark.parametrize(
    ("key", "path", "value", "error"),
    [
        ("DPUCluster/dpu-cplane-tenant1", ("spec", "maxNodes"), 1001, ".spec.maxNodes: maximum"),
        ("BFB/bf-bundle", ("spec", "url"), "ftp://x/y.bfb", ".spec.url: pattern"),
        ("DPUSet/dpuset", ("spec", "strategy", "type"), "Sometimes", ".spec.strategy.type: enum"),
        (
            "DPUFlavor/dpf-provisioning-hbn",
            ("spec", "dpuResources", "memory"),
            "lots",
            ".spec.dpuResources[memory]: pattern",
        ),
        (
            "DPUService/doca-hbn",
            ("spec", "helmChart", "source", "branch"),
            "x",
            ".spec.helmChart.source.branch: unknown",
        ),
    ],
)
def test_crd_schemas_refuse_schema_violations(
    manifests: dict[str, Obj], key: str, path: tuple[str, ...], value: Any, error: str
) -> None:
    obj = manifests[key]
    target = obj
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    assert _schema_errors(_schemas()[obj["kind"]], obj) == [error]
