"""Where a credential points: a cluster's name, API server URL and CA, as DPF puts them into the Secret.

For a DPU cluster they come from its admin kubeconfig (the Secret DPUCluster.spec.kubeconfig names). For the host
DPF reads the pod's in-cluster environment and names the cluster "incluster"; the controller here runs outside a
pod, so they come from the kubeconfig it was started with, under the same name.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from controller.dpucluster.kubeconfig import AdminKubeconfig

HOST_CLUSTER_NAME = "incluster"


class AccessError(ValueError):
    """The cluster's address or CA cannot be worked out; the message says why."""


@dataclass(frozen=True)
class ClusterAccess:
    name: str  # the cluster's name in a kubeconfig
    server: str  # https://HOST:PORT
    ca_pem: bytes  # empty for a plain-HTTP server


def current_cluster(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The name and entry of the kubeconfig's current context's cluster (or its only cluster)."""
    clusters = {str(c.get("name")): dict(c.get("cluster") or {}) for c in config.get("clusters") or []
                if isinstance(c, dict)}  # fmt: skip
    contexts = {str(c.get("name")): dict(c.get("context") or {}) for c in config.get("contexts") or []
                if isinstance(c, dict)}  # fmt: skip
    context = contexts.get(str(config.get("current-context") or ""))
    if context is not None and str(context.get("cluster")) in clusters:
        name = str(context["cluster"])
        return name, clusters[name]
    if len(clusters) == 1:
        return next(iter(clusters.items()))
    raise AccessError("the kubeconfig has no current context naming one of its clusters")


def access_from_admin(admin: AdminKubeconfig) -> ClusterAccess:
    name, _ = current_cluster(admin.config)
    return ClusterAccess(name, admin.server, admin.ca_pem)


def host_access_from_kubeconfig(path: str | Path) -> ClusterAccess:
    """The host cluster's address and CA from the controller's own kubeconfig (named "incluster", as DPF)."""
    try:
        config = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise AccessError(f"cannot read the kubeconfig {path}: {e}") from e
    if not isinstance(config, dict):
        raise AccessError(f"{path} is not a kubeconfig")
    _, cluster = current_cluster(config)
    server = str(cluster.get("server") or "")
    if not server:
        raise AccessError(f"{path}: its cluster has no server")
    ca_pem = b""
    if cluster.get("certificate-authority-data"):
        try:
            ca_pem = base64.b64decode(str(cluster["certificate-authority-data"]), validate=True)
        except binascii.Error as e:
            raise AccessError(f"{path}: certificate-authority-data is not base64: {e}") from e
    elif cluster.get("certificate-authority"):
        ca_file = Path(str(cluster["certificate-authority"]))
        if not ca_file.is_absolute():
            ca_file = Path(path).parent / ca_file
        try:
            ca_pem = ca_file.read_bytes()
        except OSError as e:
            raise AccessError(f"{path}: cannot read certificate-authority {ca_file}: {e}") from e
    return ClusterAccess(HOST_CLUSTER_NAME, server, ca_pem)
