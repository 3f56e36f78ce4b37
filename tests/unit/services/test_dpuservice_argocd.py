"""The ArgoCD objects built from a DPUService, field by field against DPF's (internal/argocd/utils.go and the
DPUService controller's values, Secret and AppProject code)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from controller.services.argocd import (
    KubeconfigProblem,
    app_projects,
    application,
    argo_repo_url,
    cluster_secret,
    deep_merge,
    helm_values,
    mirrored_pull_secret,
    project_name,
)

NS = "dpf-operator-system"


def dpuservice(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "helmChart": {"source": {"repoURL": "oci://ghcr.io/nvidia/charts", "chart": "dummy", "version": "0.1.0"}}
    }
    base.update(spec)
    return {"apiVersion": "svc.dpu.nvidia.com/v1alpha1", "kind": "DPUService",
            "metadata": {"name": "dummy", "namespace": "tenant-a", "uid": "u1"}, "spec": base}  # fmt: skip


def test_application_is_dpfs_for_one_cluster() -> None:
    svc = dpuservice()
    svc["spec"]["helmChart"]["source"]["releaseName"] = "rel"
    app = application(NS, "doca-platform-project-dpu", svc, {"a": 1}, "dc1")
    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    assert app["metadata"] == {
        "name": "dc1-dummy",
        "namespace": NS,
        "labels": {
            "dpu.nvidia.com/cluster": "dc1",
            "dpu.nvidia.com/dpuservice-name": "dummy",
            "dpu.nvidia.com/dpuservice-namespace": "tenant-a",
            "dpu.nvidia.com/component": "dpuservice-manager",
        },
        "finalizers": ["resources-finalizer.argocd.argoproj.io"],
    }
    assert app["spec"] == {
        "source": {
            "repoURL": "ghcr.io/nvidia/charts",
            "targetRevision": "0.1.0",
            "helm": {"releaseName": "rel", "valuesObject": {"a": 1}},
            "chart": "dummy",
        },
        "destination": {"name": "dc1", "namespace": "tenant-a"},
        "project": "doca-platform-project-dpu",
        "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
    }


def test_git_source_keeps_https_and_path_and_omits_what_is_unset() -> None:
    svc = dpuservice(helmChart={"source": {"repoURL": "https://git.example/charts.git", "path": "charts/x",
                                           "version": "main"}})  # fmt: skip
    src = application(NS, "p", svc, {}, "dc1")["spec"]["source"]
    assert src == {"repoURL": "https://git.example/charts.git", "path": "charts/x", "targetRevision": "main",
                   "helm": {"valuesObject": {}}}  # fmt: skip
    assert argo_repo_url("oci://reg/x") == "reg/x" and argo_repo_url("https://oci://x") == "https://oci://x"


def test_deploy_in_cluster_uses_the_host_project() -> None:
    assert project_name(dpuservice(deployInCluster=True)) == "doca-platform-project-host"
    assert project_name(dpuservice(deployInCluster=False)) == "doca-platform-project-dpu"
    assert project_name(dpuservice()) == "doca-platform-project-dpu"


def test_values_merge_service_daemonset_and_service_id_under_the_users_values() -> None:
    svc = dpuservice(
        serviceID="sid",
        serviceDaemonSet={"labels": {"team": "a"}, "annotations": {"x": "1"},
                          "updateStrategy": {"type": "RollingUpdate"}},
        helmChart={"source": {"repoURL": "oci://r", "version": "1"},
                   "values": {"image": {"tag": "v2"}, "serviceDaemonSet": {"labels": {"team": "b"},
                                                                         "tolerations": [1]}}},
    )  # fmt: skip
    values = helm_values(svc, svc["spec"]["serviceDaemonSet"])
    assert values == {
        "image": {"tag": "v2"},
        "serviceDaemonSet": {
            "labels": {"team": "b", "svc.dpu.nvidia.com/service": "sid"},  # the user's value wins
            "annotations": {"x": "1"},
            "updateStrategy": {"type": "RollingUpdate"},
            "tolerations": [1],
        },
    }
    # The user may even override the serviceID label (DPF merges the user's values last).
    svc["spec"]["helmChart"]["values"] = {"serviceDaemonSet": {"labels": {"svc.dpu.nvidia.com/service": "mine"}}}
    assert helm_values(svc, None)["serviceDaemonSet"]["labels"] == {"svc.dpu.nvidia.com/service": "mine"}


def test_values_without_service_id_or_daemonset_hold_only_the_rolling_update_strategy() -> None:
    rolling = {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}}}  # beyond DPF
    assert helm_values(dpuservice(), None) == {"serviceDaemonSet": rolling}
    assert helm_values(dpuservice(), {"annotations": {}}) == {"serviceDaemonSet": rolling}  # omitempty


def test_deep_merge_replaces_lists_and_scalars_and_does_not_touch_its_inputs() -> None:
    base = {"a": {"b": [1, 2], "c": 1}, "d": 1}
    over = {"a": {"b": [3]}, "d": {"e": 1}}
    assert deep_merge(base, over) == {"a": {"b": [3], "c": 1}, "d": {"e": 1}}
    assert base == {"a": {"b": [1, 2], "c": 1}, "d": 1}


def test_app_projects_cover_every_dpu_cluster_and_the_host() -> None:
    owner = {"metadata": {"name": "dpfoperatorconfig", "namespace": NS, "uid": "op-uid"}}
    dpu, host = app_projects(NS, ["dc1", "dc2"], owner)
    assert dpu["metadata"]["name"] == "doca-platform-project-dpu" and dpu["metadata"]["namespace"] == NS
    assert dpu["metadata"]["labels"] == {"dpu.nvidia.com/component": "dpuservice-manager"}
    assert dpu["metadata"]["ownerReferences"] == [
        {"apiVersion": "operator.dpu.nvidia.com/v1alpha1", "kind": "DPFOperatorConfig", "name": "dpfoperatorconfig",
         "uid": "op-uid", "controller": True, "blockOwnerDeletion": True}
    ]  # fmt: skip
    assert dpu["spec"] == {
        "sourceRepos": ["*"],
        "destinations": [{"name": "dc1", "namespace": "*"}, {"name": "dc2", "namespace": "*"}],
        "description": "Installing DPU Services",
        "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
        "orphanedResources": {},
    }
    assert host["metadata"]["name"] == "doca-platform-project-host"
    assert host["spec"]["destinations"] == [{"name": "in-cluster", "namespace": "*"}]
    assert "destinations" not in app_projects(NS, [], None)[0]["spec"]


def kubeconfig(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "clusters": [{"name": "other", "cluster": {"server": "https://9.9.9.9"}},
                     {"name": "dc1", "cluster": {"server": "https://10.0.0.5:6443",
                                                  "certificate-authority-data": "Q0E="}}],
        "users": [{"name": "admin", "user": user}],
        "contexts": [{"name": "ctx", "context": {"cluster": "dc1", "user": "admin"}}],
        "current-context": "ctx",
    }  # fmt: skip


def decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def test_cluster_secret_is_argocds_from_the_admin_kubeconfig() -> None:
    cluster = {"metadata": {"name": "dc1", "namespace": "dpu-cplane"}}
    secret = cluster_secret(kubeconfig({"client-certificate-data": "Q0VSVA==", "client-key-data": "S0VZ"}), NS,
                            cluster, None)  # fmt: skip
    assert secret["metadata"] == {
        "name": "dpu-cplane-dc1",
        "namespace": NS,
        "labels": {"argocd.argoproj.io/secret-type": "cluster", "dpu.nvidia.com/cluster": "dpu-cplane-dc1",
                   "dpu.nvidia.com/component": "dpuservice-manager"},
    }  # fmt: skip
    assert secret["type"] == "Opaque"
    data = decoded(secret)
    assert data["name"] == "dc1" and data["server"] == "https://10.0.0.5:6443"
    assert json.loads(data["config"]) == {
        "tlsClientConfig": {"caData": "Q0E=", "keyData": "S0VZ", "certData": "Q0VSVA=="}
    }


def test_cluster_secret_carries_a_bearer_token_and_refuses_a_kubeconfig_without_clusters_or_users() -> None:
    cluster = {"metadata": {"name": "dc1", "namespace": "ns"}}
    data = decoded(cluster_secret(kubeconfig({"token": "t0k"}), NS, cluster, None))
    assert json.loads(data["config"]) == {"tlsClientConfig": {"caData": "Q0E="}, "bearerToken": "t0k"}
    with pytest.raises(KubeconfigProblem, match="no clusters"):
        cluster_secret({"users": [{"name": "u", "user": {}}]}, NS, cluster, None)
    with pytest.raises(KubeconfigProblem, match="no users"):
        cluster_secret({**kubeconfig({}), "users": []}, NS, cluster, None)


def test_mirrored_pull_secret_copies_name_namespace_labels_data_type_only() -> None:
    host = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/dockerconfigjson", "immutable": True,
            "metadata": {"name": "regcred", "namespace": "tenant-a", "uid": "x", "resourceVersion": "7",
                         "labels": {"dpu.nvidia.com/image-pull-secret": ""}, "annotations": {"a": "b"}},
            "data": {".dockerconfigjson": "e30="}}  # fmt: skip
    assert mirrored_pull_secret(host) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "regcred", "namespace": "tenant-a", "labels": {"dpu.nvidia.com/image-pull-secret": ""}},
        "immutable": True,
        "data": {".dockerconfigjson": "e30="},
        "type": "kubernetes.io/dockerconfigjson",
    }
