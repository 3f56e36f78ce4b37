"""The kubeadm JoinConfiguration (kubeadm.k8s.io/v1beta3) a DPU joins its cluster with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from dpfd.agent.statefile import write_atomic
from dpfd.dpu.settings import JoinSettings

API_VERSION = "kubeadm.k8s.io/v1beta3"


def join_configuration(settings: JoinSettings, node_name: str) -> dict[str, Any]:
    """The JoinConfiguration object: bootstrap-token discovery and the Node's name and labels."""
    registration: dict[str, Any] = {"name": node_name}
    if settings.node_labels:
        # kubelet's --node-labels syntax; sorted so the same settings give the same file.
        labels = ",".join(f"{k}={v}" for k, v in sorted(settings.node_labels.items()))
        registration["kubeletExtraArgs"] = {"node-labels": labels}
    return {
        "apiVersion": API_VERSION,
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": settings.api_server_endpoint,
                "token": settings.token,
                "caCertHashes": list(settings.ca_cert_hashes),
            },
        },
        "nodeRegistration": registration,
    }


def render_join_configuration(settings: JoinSettings, node_name: str) -> str:
    return yaml.safe_dump(join_configuration(settings, node_name), sort_keys=False, default_flow_style=False)


def write_join_configuration(path: Path, settings: JoinSettings, node_name: str) -> Path:
    """Write the file mode 0600 (it holds the bootstrap token); returns `path`."""
    write_atomic(path, render_join_configuration(settings, node_name).encode())
    return path
