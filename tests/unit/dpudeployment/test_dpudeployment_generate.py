"""The objects a DPUDeployment generates carry DPF v24.10's names, labels, owner references and values."""

from __future__ import annotations

from typing import Any

from controller.dpudeployment.generate import generate
from dpfd.api.services import DPUServiceConfiguration, DPUServiceTemplate

NS = "dpf-operator-system"
SVC = "svc.dpu.nvidia.com/v1alpha1"
OWNER = "svc.dpu.nvidia.com/owned-by-dpudeployment"


def dd_obj(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "dpus": {
            "bfb": "bf-bundle",
            "flavor": "hbn-flavor",
            "dpuSets": [
                {
                    "nameSuffix": "dpuset1",
                    "nodeSelector": {"matchLabels": {"feature.node.kubernetes.io/dpu-enabled": "true"}},
                    "dpuSelector": {"feature.node.kubernetes.io/dpu-0-pci-address": "0000-03-00"},
                    "dpuAnnotations": {"example.com/a": "b"},
                }
            ],
        },
        "services": {"hbn": {"serviceTemplate": "hbn-t", "serviceConfiguration": "hbn-c"}},
        "serviceChains": [
            {
                "ports": [
                    {"service": {"name": "hbn", "interface": "p0_if", "ipam": {"matchLabels": {"pool": "a"}}}},
                    {"serviceInterface": {"matchLabels": {"uplink": "p0"}}},
                ]
            }
        ],
    }
    base.update(spec)
    return {
        "apiVersion": SVC,
        "kind": "DPUDeployment",
        "metadata": {"name": "dd", "namespace": NS, "uid": "uid-dd"},
        "spec": base,
    }


def template(values: dict[str, Any] | None = None, **spec: Any) -> DPUServiceTemplate:
    helm: dict[str, Any] = {"source": {"repoURL": "oci://example.com/charts", "chart": "hbn", "version": "1.0.0"}}
    if values is not None:
        helm["values"] = values
    return DPUServiceTemplate.model_validate(
        {
            "metadata": {"name": "hbn-t", "namespace": NS},
            "spec": {"deploymentServiceName": "hbn", "helmChart": helm, **spec},
        }
    )


def configuration(values: dict[str, Any] | None = None, **conf: Any) -> DPUServiceConfiguration:
    service_conf: dict[str, Any] = dict(conf)
    if values is not None:
        service_conf["helmChart"] = {"values": values}
    return DPUServiceConfiguration.model_validate(
        {
            "metadata": {"name": "hbn-c", "namespace": NS},
            "spec": {
                "deploymentServiceName": "hbn",
                "serviceConfiguration": service_conf,
                "interfaces": [{"name": "p0_if", "network": "mybrsfc"}, {"name": "app", "network": "mybrsfc"}],
            },
        }
    )


def test_names_labels_and_owner_of_every_child() -> None:
    d = generate(dd_obj(), {"hbn": template()}, {"hbn": configuration()})
    names = {
        "DPUSet": [o["metadata"]["name"] for o in d.dpusets],
        "DPUService": [o["metadata"]["name"] for o in d.services],
        "DPUServiceInterface": [o["metadata"]["name"] for o in d.interfaces],
        "DPUServiceChain": [o["metadata"]["name"] for o in d.chains],
    }
    assert names == {
        "DPUSet": ["dd-dpuset1"],
        "DPUService": ["dd-hbn"],
        "DPUServiceInterface": ["dd-hbn-p0-if", "dd-hbn-app"],
        "DPUServiceChain": ["dd"],
    }
    for obj in [*d.dpusets, *d.services, *d.interfaces, *d.chains]:
        assert obj["metadata"]["namespace"] == NS
        assert obj["metadata"]["labels"] == {OWNER: f"{NS}_dd"}
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": SVC,
                "kind": "DPUDeployment",
                "name": "dd",
                "uid": "uid-dd",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


def test_dpuset_carries_bfb_flavor_selectors_and_version_labels() -> None:
    d = generate(dd_obj(), {"hbn": template()}, {"hbn": configuration()})
    spec = d.dpusets[0]["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate"}
    assert spec["nodeSelector"] == {"matchLabels": {"feature.node.kubernetes.io/dpu-enabled": "true"}}
    assert spec["dpuSelector"] == {"feature.node.kubernetes.io/dpu-0-pci-address": "0000-03-00"}
    tmpl = spec["dpuTemplate"]
    assert tmpl["annotations"] == {"example.com/a": "b"}
    assert tmpl["spec"]["bfb"] == {"name": "bf-bundle"} and tmpl["spec"]["dpuFlavor"] == "hbn-flavor"
    labels = tmpl["spec"]["cluster"]["nodeLabels"]
    assert set(labels) == {
        OWNER,
        "svc.dpu.nvidia.com/dpuservice-hbn-version",
        "svc.dpu.nvidia.com/dpuservicechain-version",
    }
    assert labels[OWNER] == f"{NS}_dd"
    assert all(len(v) == 10 for k, v in labels.items() if k != OWNER)


def test_dpuservice_merges_config_values_over_template_and_pins_to_its_version() -> None:
    t = template({"image": {"repo": "r", "tag": "1"}, "replicas": 1, "list": [1, 2]}, resourceRequirements={"cpu": 1})
    c = configuration({"image": {"tag": "2"}, "list": [3], "extra": True}, serviceDaemonSet={"labels": {"a": "b"}})
    d = generate(dd_obj(), {"hbn": t}, {"hbn": c})
    spec = d.services[0]["spec"]
    assert spec["serviceID"] == "dpudeployment_dd_hbn"
    assert spec["helmChart"]["source"] == {"repoURL": "oci://example.com/charts", "chart": "hbn", "version": "1.0.0"}
    assert spec["helmChart"]["values"] == {
        "image": {"repo": "r", "tag": "2"},
        "replicas": 1,
        "list": [3],
        "extra": True,
    }
    assert spec["interfaces"] == ["dd-hbn-p0-if", "dd-hbn-app"]
    version = d.node_labels["svc.dpu.nvidia.com/dpuservice-hbn-version"]
    assert spec["serviceDaemonSet"] == {
        "labels": {"a": "b"},
        "nodeSelector": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {"key": "svc.dpu.nvidia.com/dpuservice-hbn-version", "operator": "In", "values": [version]},
                        {"key": OWNER, "operator": "In", "values": [f"{NS}_dd"]},
                    ]
                }
            ]
        },
    }
    assert "deployInCluster" not in spec


def test_in_cluster_service_has_no_node_selector_and_no_node_label() -> None:
    d = generate(dd_obj(), {"hbn": template()}, {"hbn": configuration(deployInCluster=True)})
    spec = d.services[0]["spec"]
    assert spec["deployInCluster"] is True and "serviceDaemonSet" not in spec
    assert "svc.dpu.nvidia.com/dpuservice-hbn-version" not in d.node_labels


def test_interfaces_are_service_interfaces_labelled_for_the_chain() -> None:
    d = generate(dd_obj(), {"hbn": template()}, {"hbn": configuration()})
    version = d.node_labels["svc.dpu.nvidia.com/dpuservice-hbn-version"]
    set_spec = d.interfaces[0]["spec"]["template"]["spec"]
    assert set_spec["nodeSelector"] == {
        "matchLabels": {"svc.dpu.nvidia.com/dpuservice-hbn-version": version, OWNER: f"{NS}_dd"}
    }
    assert set_spec["template"] == {
        "metadata": {
            "labels": {"svc.dpu.nvidia.com/service": "dpudeployment_dd_hbn", "svc.dpu.nvidia.com/interface": "p0_if"}
        },
        "spec": {
            "interfaceType": "service",
            "service": {"serviceID": "dpudeployment_dd_hbn", "network": "mybrsfc", "interfaceName": "p0_if"},
        },
    }


def test_chain_turns_service_ports_into_interface_selectors() -> None:
    d = generate(dd_obj(), {"hbn": template()}, {"hbn": configuration()})
    set_spec = d.chains[0]["spec"]["template"]["spec"]
    assert set_spec["nodeSelector"] == {
        "matchLabels": {
            "svc.dpu.nvidia.com/dpuservicechain-version": d.node_labels["svc.dpu.nvidia.com/dpuservicechain-version"],
            OWNER: f"{NS}_dd",
        }
    }
    assert set_spec["template"]["spec"]["switches"] == [
        {
            "ports": [
                {
                    "serviceInterface": {
                        "matchLabels": {
                            "svc.dpu.nvidia.com/service": "dpudeployment_dd_hbn",
                            "svc.dpu.nvidia.com/interface": "p0_if",
                        },
                        "ipam": {"matchLabels": {"pool": "a"}},
                    }
                },
                {"serviceInterface": {"matchLabels": {"uplink": "p0"}}},
            ]
        }
    ]


def test_a_config_change_moves_only_that_service_version() -> None:
    before = generate(dd_obj(), {"hbn": template()}, {"hbn": configuration({"x": 1})})
    after = generate(dd_obj(), {"hbn": template()}, {"hbn": configuration({"x": 2})})
    key = "svc.dpu.nvidia.com/dpuservice-hbn-version"
    assert before.node_labels[key] != after.node_labels[key]
    chain = "svc.dpu.nvidia.com/dpuservicechain-version"
    assert before.node_labels[chain] == after.node_labels[chain]
    again = generate(dd_obj(), {"hbn": template()}, {"hbn": configuration({"x": 1})})
    assert again.node_labels == before.node_labels  # stable across runs


def test_no_service_chains_means_no_chain() -> None:
    d = generate(dd_obj(serviceChains=None), {"hbn": template()}, {"hbn": configuration()})
    assert d.chains == []
    assert "svc.dpu.nvidia.com/dpuservicechain-version" not in d.node_labels
