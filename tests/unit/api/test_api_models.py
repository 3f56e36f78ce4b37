"""The models accept realistic DPF manifests of every kind, and validate_object's contract around them."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dpfd.api import provisioning, services
from dpfd.api.registry import DPF_GROUPS, KINDS, kind_info
from dpfd.api.validation import InvalidObject, Problem, parse_object, validate_documents, validate_object

Obj = dict[str, Any]
REPO = Path(__file__).resolve().parents[3]


def test_manifests_cover_every_kind(manifests: dict[str, Obj]) -> None:
    assert {obj["kind"] for obj in manifests.values()} == {info.kind for info in KINDS.values()}
    assert len(KINDS) == 18
    assert (
        {g for g, _ in KINDS}
        == DPF_GROUPS
        == {
            "provisioning.dpu.nvidia.com",
            "svc.dpu.nvidia.com",
            "operator.dpu.nvidia.com",
        }
    )


def test_every_manifest_is_valid_and_parses_to_its_model(manifests: dict[str, Obj]) -> None:
    for key, obj in manifests.items():
        assert validate_object(obj) == [], key
        model = parse_object(obj)
        info = kind_info(obj["apiVersion"], obj["kind"])
        assert info is not None and isinstance(model, info.model), key


def test_parsed_models_carry_the_fields(manifests: dict[str, Obj]) -> None:
    flavor = parse_object(manifests["DPUFlavor/dpf-provisioning-hbn"])
    assert isinstance(flavor, provisioning.DPUFlavor)
    assert flavor.spec.nvconfig is not None
    assert "NUM_OF_VFS=46" in (flavor.spec.nvconfig[0].parameters or [])
    assert "PF_TOTAL_SF=20" in (flavor.spec.nvconfig[0].parameters or [])
    dpu = parse_object(manifests["DPU/worker-1-0000-03-00"])
    assert isinstance(dpu, provisioning.DPU)
    assert dpu.status is not None and dpu.status.phase == "OS Installing"
    assert dpu.metadata.model_extra == {"managedFields": [{"manager": "dpf-controller", "operation": "Apply"}]}
    assert dpu.spec.pciAddress == "0000-03-00"  # stays a string, as kubectl reads it
    svc = parse_object(manifests["DPUService/doca-hbn"])
    assert isinstance(svc, services.DPUService)
    assert svc.spec.helmChart.values is not None
    assert svc.spec.helmChart.values["configuration"] == {"perDPUValuesYAML": None}  # free-form: kept as given


def test_docs_examples_validate_clean() -> None:
    examples = sorted((REPO / "docs" / "examples").glob("*.yaml"))
    assert len(examples) >= 5
    kinds: set[str] = set()
    for path in examples:
        assert validate_documents(path.read_text(), str(path)) == [], path
        kinds.update(
            line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("kind:")
        )
    assert {"Node", "BFB", "DPUFlavor", "DPUSet", "DPUCluster"} <= kinds


@pytest.mark.parametrize(
    "obj",
    [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"}, "spec": {"anything": 1}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"admin.conf": "eA=="}},
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"}, "spec": "not checked"},
        {"apiVersion": "nvidia.com/v1alpha1", "kind": "BFB", "metadata": {"name": "other-group"}},
        {"kind": "BFB"},
    ],
)
def test_objects_outside_the_dpf_groups_are_passed_over(obj: Obj) -> None:
    assert validate_object(obj) == []


def test_unknown_kind_in_a_dpf_group_is_a_problem() -> None:
    obj = {"apiVersion": "provisioning.dpu.nvidia.com/v1alpha1", "kind": "DPUNode", "metadata": {"name": "n"}}
    (problem,) = validate_object(obj)
    assert problem.path == "kind"
    assert problem.reason == (
        'no kind "DPUNode" in version "provisioning.dpu.nvidia.com/v1alpha1" '
        "(kinds: BFB, DPU, DPUCluster, DPUFlavor, DPUSet)"
    )


def test_wrong_version_of_a_dpf_kind_is_a_problem(manifests: dict[str, Obj]) -> None:
    obj = manifests["BFB/bf-bundle"]
    obj["apiVersion"] = "provisioning.dpu.nvidia.com/v1beta1"
    (problem,) = validate_object(obj)
    assert problem.reason.startswith('no kind "BFB" in version "provisioning.dpu.nvidia.com/v1beta1"')


def test_null_fields_count_as_absent(manifests: dict[str, Obj]) -> None:
    obj = manifests["DPUSet/dpuset"]
    obj["spec"]["strategy"] = None
    obj["spec"]["dpuTemplate"]["spec"]["cluster"] = None
    assert validate_object(obj) == []


def test_parse_object_raises_with_the_problems(manifests: dict[str, Obj]) -> None:
    obj = manifests["DPUCluster/dpu-cplane-tenant1"]
    obj["spec"]["maxNodes"] = 0
    with pytest.raises(InvalidObject) as caught:
        parse_object(obj)
    assert isinstance(caught.value, ValueError)
    assert [p.path for p in caught.value.problems] == ["spec.maxNodes"]
    assert str(caught.value) == (
        "DPUCluster dpf-operator-system/dpu-cplane-tenant1: spec.maxNodes: "
        "Invalid value: 0: should be greater than or equal to 1"
    )
    with pytest.raises(InvalidObject):
        parse_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "x"}})


def test_models_validate_when_built_in_python() -> None:
    """Controllers build objects in code; the same rules apply there."""
    dpu = provisioning.DPU(
        metadata={"name": "worker-1-0000-03-00", "namespace": "dpf-operator-system"},  # type: ignore[arg-type]
        spec=provisioning.DPUSpec(nodeName="worker-1", bfb="bf-bundle", dpuFlavor="hbn"),
    )
    dumped = dpu.model_dump(mode="json", exclude_none=True)
    assert dumped["spec"]["nodeEffect"] == {"drain": {"automaticNodeReboot": True}}
    assert validate_object(dumped) == []
    with pytest.raises(ValueError, match="must set exactly one of noEffect, taint, customLabel, drain"):
        provisioning.NodeEffect(noEffect=True, drain=provisioning.Drain())


@pytest.mark.parametrize(
    ("problem", "line"),
    [
        (Problem("BFB", "ns", "b", "spec.url", "Required value"), "BFB ns/b: spec.url: Required value"),
        (Problem("BFB", "ns", "b", "", 'unknown field "x"'), 'BFB ns/b: unknown field "x"'),
        (
            Problem("BFB", "", "b", "spec", "Required value", "f.yaml:3"),
            "f.yaml:3: BFB b: spec: Required value",
        ),
        (Problem("", "", "", "", "YAML syntax error: boom", "f.yaml:9"), "f.yaml:9: YAML syntax error: boom"),
    ],
)
def test_problem_format_is_one_stable_line(problem: Problem, line: str) -> None:
    assert problem.format() == line


def test_validate_object_is_fast(manifests: dict[str, Obj]) -> None:
    """It runs on every API write in the emulator: well under a millisecond for a typical object."""
    objects = list(manifests.values())
    rounds = 20
    start = time.perf_counter()
    for _ in range(rounds):
        for obj in objects:
            validate_object(obj)
    per_object = (time.perf_counter() - start) / (rounds * len(objects))
    assert per_object < 0.001, f"{per_object * 1e6:.0f} µs per object"
