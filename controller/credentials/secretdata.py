"""The Secret's data, as DPF writes it: a kubeconfig (key "kubeconfig", what clientcmd.Write makes) or a token
file with the variables client-go's in-cluster config reads (TOKEN_FILE, KUBERNETES_SERVICE_HOST,
KUBERNETES_SERVICE_PORT, KUBERNETES_CA_DATA)."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import yaml

from controller.credentials.access import ClusterAccess
from controller.credentials.resources import (
    KEY_CA_DATA,
    KEY_HOST,
    KEY_KUBECONFIG,
    KEY_PORT,
    KEY_TOKEN_FILE,
    KEYS_OF_TYPE,
    TYPE_KUBECONFIG,
    TYPE_TOKEN_FILE,
)


def kubeconfig_data(access: ClusterAccess, sa_namespace: str, sa_name: str, token: str) -> dict[str, bytes]:
    """One cluster, one context and one user, the last two named after the ServiceAccount; keys sorted as
    clientcmd.Write sorts them."""
    cluster: dict[str, str] = {"server": access.server}
    if access.ca_pem:
        cluster["certificate-authority-data"] = base64.b64encode(access.ca_pem).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": access.name, "cluster": cluster}],
        "contexts": [
            {"name": sa_name, "context": {"cluster": access.name, "namespace": sa_namespace, "user": sa_name}}
        ],
        "current-context": sa_name,
        "preferences": {},
        "users": [{"name": sa_name, "user": {"token": token}}],
    }
    return {KEY_KUBECONFIG: yaml.safe_dump(config, sort_keys=True).encode()}


def token_file_data(access: ClusterAccess, token: str) -> dict[str, bytes]:
    url = urlsplit(access.server)
    host, port = url.hostname or "", str(url.port) if url.port is not None else ""
    return {
        KEY_HOST: host.encode(),
        KEY_PORT: port.encode(),
        KEY_CA_DATA: access.ca_pem,
        KEY_TOKEN_FILE: token.encode(),
    }


def secret_data(kind: str, access: ClusterAccess, sa_namespace: str, sa_name: str, token: str) -> dict[str, bytes]:
    if kind == TYPE_KUBECONFIG:
        return kubeconfig_data(access, sa_namespace, sa_name, token)
    if kind == TYPE_TOKEN_FILE:
        return token_file_data(access, token)
    raise ValueError(f"unsupported secret type: {kind}")


def has_keys_of(kind: str, data: dict[str, str] | None) -> bool:
    """Whether a Secret's data holds every key a Secret of `kind` should (a deleted Secret, or one of the
    other type, does not)."""
    wanted = KEYS_OF_TYPE.get(kind, ())
    return bool(wanted) and data is not None and all(k in data for k in wanted)


def encode(data: dict[str, bytes]) -> dict[str, str]:
    return {k: base64.b64encode(v).decode() for k, v in data.items()}
