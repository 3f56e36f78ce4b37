"""The system DPUServices a DPFOperatorConfig asks for: DPF's names, label, owner, chart (the release default or the
component's helmChart, parsed as DPF parses it), values switching the component on, pull secrets; none for a
disabled component; a malformed helmChart refused naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from controller.operatorconfig.system_services import (
    DEFAULT_DPU_NETWORKING_CHART,
    ChartError,
    is_system_service,
    parse_helm_chart,
    system_dpuservices,
)


def config(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "operator.dpu.nvidia.com/v1alpha1", "kind": "DPFOperatorConfig",
            "metadata": {"name": "dpfoperatorconfig", "namespace": "dpf-operator-system", "uid": "u-1"},
            "spec": {"provisioningController": {"bfbPVCName": "bfb-pvc"}, **spec}}  # fmt: skip


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("oci://example.com/dpu-networking:v0.1.0", ("oci://example.com", "dpu-networking", "v0.1.0")),
        ("https://helm.ngc.nvidia.com/nvidia/doca/flannel:0.25.1", ("https://helm.ngc.nvidia.com/nvidia/doca", "flannel", "0.25.1")),
        ("registry:5000/charts/multus:1.2", ("registry:5000/charts", "multus", "1.2")),
    ],
)  # fmt: skip
def test_helm_chart_strings_parse_as_dpf_parses_them(text: str, parsed: tuple[str, str, str]) -> None:
    source = parse_helm_chart(text)
    assert (source["repoURL"], source["chart"], source["version"]) == parsed


@pytest.mark.parametrize(
    "text", ["flannel", "flannel:1.0", "oci://example.com/flannel", "example.com/flannel:", "/x:1"]
)
def test_malformed_helm_chart_strings_are_refused(text: str) -> None:
    with pytest.raises(ChartError, match=f"invalid format {text}"):
        parse_helm_chart(text)


def test_default_config_asks_for_three_system_dpuservices_on_the_release_chart() -> None:
    services = {s["metadata"]["name"]: s for s in system_dpuservices(config(imagePullSecrets=["regcred"]))}
    assert list(services) == ["flannel", "multus", "sriov-device-plugin"]
    default = parse_helm_chart(DEFAULT_DPU_NETWORKING_CHART)
    for name, svc in services.items():
        meta = svc["metadata"]
        assert (svc["apiVersion"], svc["kind"]) == ("svc.dpu.nvidia.com/v1alpha1", "DPUService")
        assert meta["namespace"] == "dpf-operator-system"
        assert meta["labels"] == {"dpu.nvidia.com/component": name}
        assert meta["ownerReferences"] == [{"apiVersion": "operator.dpu.nvidia.com/v1alpha1",
                                            "kind": "DPFOperatorConfig", "name": "dpfoperatorconfig", "uid": "u-1",
                                            "controller": True, "blockOwnerDeletion": True}]  # fmt: skip
        assert svc["spec"]["helmChart"]["source"] == default
        values = svc["spec"]["helmChart"]["values"]
        assert values[name] == {"enabled": True}  # the dpu-networking chart has every component off by default
        assert values["imagePullSecrets"] == [{"name": "regcred"}]
        assert is_system_service(svc)
    assert services["flannel"]["spec"]["helmChart"]["values"]["podCidr"] == "10.36.0.0/16"


def test_disabled_components_have_none_and_a_component_chart_wins() -> None:
    services = system_dpuservices(
        config(multus={"disable": True}, flannel={"helmChart": "oci://registry.example.com/charts/flannel:v0.26.0"}),
        "oci://mirror.example.com/dpu-networking:v1",
    )
    by_name = {s["metadata"]["name"]: s["spec"]["helmChart"] for s in services}
    assert list(by_name) == ["flannel", "sriov-device-plugin"]
    assert by_name["flannel"]["source"] == {"repoURL": "oci://registry.example.com/charts", "chart": "flannel",
                                            "version": "v0.26.0"}  # fmt: skip
    assert by_name["sriov-device-plugin"]["source"]["repoURL"] == "oci://mirror.example.com"
    assert "imagePullSecrets" not in by_name["flannel"]["values"]


def test_a_malformed_component_chart_names_its_field() -> None:
    with pytest.raises(ChartError, match=r"^spec.sriovDevicePlugin.helmChart: .*invalid format nonsense$"):
        system_dpuservices(config(sriovDevicePlugin={"helmChart": "nonsense"}))


def test_only_labelled_dpuservices_of_the_system_names_are_system_services() -> None:
    mine = {"metadata": {"name": "multus", "labels": {"dpu.nvidia.com/component": "multus"}}}
    users = {"metadata": {"name": "multus", "labels": {}}}
    other = {"metadata": {"name": "hbn", "labels": {"dpu.nvidia.com/component": "hbn"}}}
    assert is_system_service(mine) and not is_system_service(users) and not is_system_service(other)
