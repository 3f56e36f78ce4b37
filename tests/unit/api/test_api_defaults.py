"""apply_defaults: what DPF's CRD defaults and mutating webhooks fill in, and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from dpfd.api import provisioning
from dpfd.api.crds import generate_crds
from dpfd.api.validation import apply_defaults, parse_object, validate_object

Obj = dict[str, Any]


def test_bfb_file_name_defaults_to_namespace_and_name(manifests: dict[str, Obj]) -> None:
    bfb = manifests["BFB/bf-bundle"]
    del bfb["spec"]["fileName"]
    assert apply_defaults(bfb)["spec"] == {
        "url": bfb["spec"]["url"],
        "fileName": "dpf-operator-system-bf-bundle.bfb",
    }
    bfb["spec"]["fileName"] = "mine.bfb"
    assert apply_defaults(bfb)["spec"]["fileName"] == "mine.bfb"


def test_dpuset_defaults(manifests: dict[str, Obj]) -> None:
    dpuset = manifests["DPUSet/dpuset"]
    del dpuset["spec"]["strategy"]
    del dpuset["spec"]["dpuTemplate"]["spec"]["nodeEffect"]
    del dpuset["spec"]["dpuTemplate"]["spec"]["automaticNodeReboot"]
    spec = apply_defaults(dpuset)["spec"]
    assert spec["strategy"] == {"type": "Recreate"}
    assert spec["dpuTemplate"]["spec"]["nodeEffect"] == {"drain": {"automaticNodeReboot": True}}
    assert spec["dpuTemplate"]["spec"]["automaticNodeReboot"] is True


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ({"type": "RollingUpdate"}, {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}),
        (
            {"type": "RollingUpdate", "rollingUpdate": {}},
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
        ),
        (
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "30%"}},
            {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "30%"}},
        ),
        ({}, {"type": "Recreate"}),
        (
            {"rollingUpdate": {"maxUnavailable": 2}},
            {"type": "Recreate", "rollingUpdate": {"maxUnavailable": 2}},
        ),
    ],
)
def test_dpuset_strategy_defaults(manifests: dict[str, Obj], strategy: Obj, expected: Obj) -> None:
    dpuset = manifests["DPUSet/dpuset"]
    dpuset["spec"]["strategy"] = strategy
    assert apply_defaults(dpuset)["spec"]["strategy"] == expected


def test_drain_without_reboot_flag_gets_it(manifests: dict[str, Obj]) -> None:
    dpu = manifests["DPU/worker-1-0000-03-00"]
    dpu["spec"]["nodeEffect"] = {"drain": {}}
    assert apply_defaults(dpu)["spec"]["nodeEffect"] == {"drain": {"automaticNodeReboot": True}}
    dpu["spec"]["nodeEffect"] = {"taint": {"key": "k", "effect": "NoSchedule"}}
    assert apply_defaults(dpu)["spec"]["nodeEffect"] == {"taint": {"key": "k", "effect": "NoSchedule"}}


def test_dpucluster_and_operator_config_defaults(manifests: dict[str, Obj]) -> None:
    cluster = manifests["DPUCluster/dpu-cplane-tenant1"]
    del cluster["spec"]["maxNodes"]
    assert apply_defaults(cluster)["spec"]["maxNodes"] == 1000
    config = manifests["DPFOperatorConfig/dpfoperatorconfig"]
    del config["spec"]["networking"]
    assert apply_defaults(config)["spec"]["networking"] == {"controlPlaneMTU": 1500, "highSpeedMTU": 1500}
    config["spec"]["networking"] = {"highSpeedMTU": 9000}
    assert apply_defaults(config)["spec"]["networking"] == {"highSpeedMTU": 9000, "controlPlaneMTU": 1500}


def test_nothing_else_changes(manifests: dict[str, Obj]) -> None:
    for key, obj in manifests.items():
        before = json.dumps(obj, sort_keys=True)
        out = apply_defaults(obj)
        assert json.dumps(obj, sort_keys=True) == before, f"{key}: input was changed"
        assert out["metadata"] == obj["metadata"] and out.get("status") == obj.get("status"), key
        assert apply_defaults(out) == out, f"{key}: defaulting is not idempotent"
        assert validate_object(out) == [], key
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "w"}, "spec": {}}
    assert apply_defaults(node) == node


def test_status_is_not_defaulted(manifests: dict[str, Obj]) -> None:
    cluster = manifests["DPUCluster/dpu-cplane-tenant1"]
    assert "status" not in apply_defaults(cluster)


def test_parse_object_returns_the_stored_form(manifests: dict[str, Obj]) -> None:
    dpuset = manifests["DPUSet/dpuset"]
    del dpuset["spec"]["strategy"]
    model = parse_object(dpuset)
    assert isinstance(model, provisioning.DPUSet)
    assert model.spec.strategy is not None and model.spec.strategy.type == "Recreate"


def _schema_defaults(schema: Obj, value: Any) -> None:
    """Structural defaulting straight from a CRD schema, as kube-apiserver does it."""
    if isinstance(value, dict):
        for name, prop in (schema.get("properties") or {}).items():
            if name not in value and "default" in prop:
                value[name] = json.loads(json.dumps(prop["default"]))
            if name in value:
                _schema_defaults(prop, value[name])
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _schema_defaults(schema["items"], item)


def test_crd_schema_defaults_agree_with_apply_defaults(manifests: dict[str, Obj]) -> None:
    """A real API server defaults from the CRD; the webhook part aside, it must match apply_defaults."""
    schemas = {
        c["spec"]["names"]["kind"]: c["spec"]["versions"][0]["schema"]["openAPIV3Schema"] for c in generate_crds()
    }
    dpuset = manifests["DPUSet/dpuset"]
    dpuset["spec"]["dpuTemplate"]["spec"] = {"bfb": {"name": "b"}, "dpuFlavor": "f"}
    cluster = manifests["DPUCluster/dpu-cplane-tenant1"]
    del cluster["spec"]["maxNodes"]
    config = manifests["DPFOperatorConfig/dpfoperatorconfig"]
    del config["spec"]["networking"]
    for obj in (dpuset, cluster, config, *manifests.values()):
        from_schema = json.loads(json.dumps(obj))
        _schema_defaults(schemas[obj["kind"]], from_schema)
        expected = apply_defaults(obj)
        if obj["kind"] == "BFB":
            expected["spec"].pop("fileName")
            from_schema["spec"].pop("fileName", None)
        if obj["kind"] == "DPUSet" and "strategy" not in obj["spec"]:
            expected["spec"].pop("strategy")
        assert from_schema == expected, obj["kind"]
