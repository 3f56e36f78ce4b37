"""Pure builders: a DPUService (and the DPU clusters) in, the ArgoCD objects DPF writes out, as plain dicts.

Field names and omissions follow DPF's Go structs marshalled with `omitempty` (internal/argocd/utils.go,
argoCDValuesFromDPUService and createArgoSecretFromKubeconfig in dpuservice_controller.go).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from controller.kube.objects import Obj, controller_owner_ref, name_of, namespace_of
from controller.services.resources import (
    APP_FINALIZER,
    APPLICATIONS,
    APPPROJECTS,
    COMPONENT,
    COMPONENT_LABEL,
    DPFOPERATORCONFIGS,
    IN_CLUSTER,
    PROJECT_DPU,
    PROJECT_HOST,
    SECRET_TYPE_CLUSTER,
    SECRET_TYPE_LABEL,
)
from controller.services.rollout import budget_of, with_update_strategy
from dpfd.api.wellknown import (
    DPUCLUSTER_LABEL,
    DPUSERVICE_NAME,
    DPUSERVICE_NAMESPACE,
    IMAGE_PULL_SECRET_LABEL,
    SERVICE_ID_LABEL,
)

JSON = dict[str, Any]


def spec_of(obj: Obj) -> JSON:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def application_name(cluster: str, service: str) -> str:
    return f"{cluster}-{service}"


def argo_repo_url(repo_url: str) -> str:
    """ArgoCD takes an OCI registry without its scheme (DPF's GetArgoRepoURL)."""
    return repo_url.removeprefix("oci://")


def deploys_in_cluster(service: Obj) -> bool:
    return spec_of(service).get("deployInCluster") is True


def project_name(service: Obj) -> str:
    return PROJECT_HOST if deploys_in_cluster(service) else PROJECT_DPU


def is_paused(service: Obj) -> bool:
    return spec_of(service).get("paused") is True


def service_labels(service: Obj) -> dict[str, str]:
    """The labels that tie an Application to its DPUService."""
    return {DPUSERVICE_NAME: name_of(service), DPUSERVICE_NAMESPACE: namespace_of(service)}


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any] | None) -> JSON:
    """`over` merged into a copy of `base`: maps merge key by key, anything else (lists too) is replaced."""
    out: JSON = json.loads(json.dumps(dict(base)))
    for key, value in (over or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = json.loads(json.dumps(value))
    return out


def helm_values(service: Obj, service_daemonset: Mapping[str, Any] | None) -> JSON:
    """valuesObject: `serviceDaemonSet` (with the serviceID label, and beyond DPF a RollingUpdate strategy under
    the DPUService's maxUnavailable budget) deep-merged with the user's values, which win."""
    daemonset = {k: v for k, v in (service_daemonset or {}).items() if v not in (None, {}, [])}
    service_id = spec_of(service).get("serviceID")
    if service_id:
        daemonset["labels"] = {**(daemonset.get("labels") or {}), SERVICE_ID_LABEL: service_id}
    user = (spec_of(service).get("helmChart") or {}).get("values")
    user = user if isinstance(user, Mapping) else None
    user_daemonset = (user or {}).get("serviceDaemonSet")
    if not (isinstance(user_daemonset, Mapping) and user_daemonset.get("updateStrategy")):
        # Beyond DPF: pods replaced DPU by DPU (a user strategy is kept whole, never merged with this one).
        daemonset = with_update_strategy(daemonset, budget_of(service))
    return deep_merge({"serviceDaemonSet": daemonset}, user)


def application(namespace: str, project: str, service: Obj, values: Mapping[str, Any], cluster: str) -> JSON:
    """The Application for one destination cluster (a DPUCluster's name, or "in-cluster")."""
    source = (spec_of(service).get("helmChart") or {}).get("source") or {}
    helm: JSON = {}
    if source.get("releaseName"):
        helm["releaseName"] = source["releaseName"]
    helm["valuesObject"] = dict(values)
    app_source: JSON = {"repoURL": argo_repo_url(str(source.get("repoURL", "")))}
    if source.get("path"):
        app_source["path"] = source["path"]
    if source.get("version"):
        app_source["targetRevision"] = source["version"]
    app_source["helm"] = helm
    if source.get("chart"):
        app_source["chart"] = source["chart"]
    return {
        "apiVersion": APPLICATIONS.api_version,
        "kind": APPLICATIONS.kind,
        "metadata": {
            "name": application_name(cluster, name_of(service)),
            "namespace": namespace,
            "labels": {DPUCLUSTER_LABEL: cluster, **service_labels(service), COMPONENT_LABEL: COMPONENT},
            "finalizers": [APP_FINALIZER],  # ArgoCD's cascading deletion of what the Application deployed
        },
        "spec": {
            "source": app_source,
            "destination": {"name": cluster, "namespace": namespace_of(service)},
            "project": project,
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }


def operator_owner_ref(operator_config: Obj) -> JSON:
    return controller_owner_ref(operator_config, DPFOPERATORCONFIGS.api_version, DPFOPERATORCONFIGS.kind)


def app_project(namespace: str, name: str, destinations: Iterable[str], owner: Obj | None) -> JSON:
    """An AppProject allowing any repository and, on each named destination cluster, any namespace and kind."""
    spec: JSON = {"sourceRepos": ["*"]}
    dests = [{"name": d, "namespace": "*"} for d in destinations]
    if dests:
        spec["destinations"] = dests
    spec["description"] = "Installing DPU Services"
    spec["clusterResourceWhitelist"] = [{"group": "*", "kind": "*"}]  # cluster-scoped objects in DPU clusters
    spec["orphanedResources"] = {}
    metadata: JSON = {"name": name, "namespace": namespace, "labels": {COMPONENT_LABEL: COMPONENT}}
    if owner is not None:
        metadata["ownerReferences"] = [operator_owner_ref(owner)]
    return {"apiVersion": APPPROJECTS.api_version, "kind": APPPROJECTS.kind, "metadata": metadata, "spec": spec}


def app_projects(namespace: str, clusters: Iterable[str], owner: Obj | None) -> list[JSON]:
    """DPF's two: every DPU cluster, and the host cluster."""
    return [
        app_project(namespace, PROJECT_DPU, clusters, owner),
        app_project(namespace, PROJECT_HOST, [IN_CLUSTER], owner),
    ]


class KubeconfigProblem(ValueError):
    """The admin kubeconfig lacks what an ArgoCD cluster Secret needs."""


def _current(config: Mapping[str, Any], section: str, key: str) -> tuple[str, JSON]:
    """The named entry of `section` ("clusters"/"users") the current context uses, else the first one."""
    entries = [e for e in config.get(section) or [] if isinstance(e, dict)]
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or [] if isinstance(c, dict)}
    wanted = (contexts.get(config.get("current-context")) or {}).get(key)
    for e in entries:
        if e.get("name") == wanted:
            return str(e.get("name") or ""), dict(e.get(key) or {})
    if entries:
        return str(entries[0].get("name") or ""), dict(entries[0].get(key) or {})
    return "", {}


def cluster_secret_name(cluster: Obj) -> str:
    """DPF's ClusterNamespaceName: `<namespace>-<name>` of the DPUCluster."""
    return f"{namespace_of(cluster)}-{name_of(cluster)}"


def cluster_secret(admin_config: Mapping[str, Any], namespace: str, cluster: Obj, owner: Obj | None) -> JSON:
    """The ArgoCD cluster Secret for a DPU cluster, from its admin kubeconfig. As DPF: `name` is the kubeconfig's
    cluster entry, `config.tlsClientConfig` its CA and client certificate. Beyond DPF, a bearer token (the
    emulated API's admin credential) travels as ArgoCD's `bearerToken`, without which Argo could not log in."""
    cluster_name, entry = _current(admin_config, "clusters", "cluster")
    if not cluster_name:
        raise KubeconfigProblem("no clusters found in kubeconfig")
    user_name, user = _current(admin_config, "users", "user")
    if not user_name:
        raise KubeconfigProblem("no users found in kubeconfig")
    tls = {
        k: v
        for k, v in (
            ("caData", entry.get("certificate-authority-data")),
            ("keyData", user.get("client-key-data")),
            ("certData", user.get("client-certificate-data")),
        )
        if v
    }
    config: JSON = {"tlsClientConfig": tls}
    if user.get("token"):
        config["bearerToken"] = user["token"]
    secret_name = cluster_secret_name(cluster)
    metadata: JSON = {
        "name": secret_name,
        "namespace": namespace,
        "labels": {SECRET_TYPE_LABEL: SECRET_TYPE_CLUSTER, DPUCLUSTER_LABEL: secret_name, COMPONENT_LABEL: COMPONENT},
    }
    if owner is not None:
        metadata["ownerReferences"] = [operator_owner_ref(owner)]
    data = {"name": cluster_name, "server": str(entry.get("server") or ""), "config": json.dumps(config)}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def is_pull_secret(secret: Obj) -> bool:
    return IMAGE_PULL_SECRET_LABEL in ((secret.get("metadata") or {}).get("labels") or {})


def mirrored_pull_secret(secret: Obj) -> JSON:
    """The copy of a labelled image-pull Secret DPF writes into each DPU cluster: name, namespace, labels,
    immutable, data and type."""
    meta = secret.get("metadata") or {}
    out: JSON = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": dict(meta.get("labels") or {}),
        },
    }
    if "immutable" in secret:
        out["immutable"] = secret["immutable"]
    out["data"] = dict(secret.get("data") or {})
    if secret.get("type"):
        out["type"] = secret["type"]
    return out
