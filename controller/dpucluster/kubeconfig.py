"""A DPU cluster's admin kubeconfig, as DPF keeps it: key "admin.conf" of the Secret named by spec.kubeconfig."""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

ADMIN_CONF_KEY = "admin.conf"


class KubeconfigError(ValueError):
    """The admin kubeconfig is missing or unusable; the message names the Secret and what is wrong."""


@dataclass(frozen=True)
class AdminKubeconfig:
    config: dict[str, Any]  # the parsed kubeconfig, for KubeClient.from_kubeconfig_dict
    raw: bytes  # as stored, to notice a rotation
    server: str  # https://HOST:PORT
    ca_pem: bytes

    @property
    def endpoint(self) -> str:
        """HOST:PORT, what `kubeadm join` takes."""
        url = urlsplit(self.server)
        host = url.hostname or ""
        return f"[{host}]:{url.port or 443}" if ":" in host else f"{host}:{url.port or 443}"

    @property
    def ca_pin(self) -> str:
        return ca_pin(self.ca_pem)


def ca_pin(ca_pem: bytes) -> str:
    """kubeadm's --discovery-token-ca-cert-hash: sha256 of the CA certificate's DER SubjectPublicKeyInfo."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def _current_cluster(config: dict[str, Any]) -> dict[str, Any]:
    contexts = {c.get("name"): c.get("context") or {} for c in config.get("contexts") or [] if isinstance(c, dict)}
    clusters = {c.get("name"): c.get("cluster") or {} for c in config.get("clusters") or [] if isinstance(c, dict)}
    context = contexts.get(config.get("current-context"))
    if context is not None and context.get("cluster") in clusters:
        return dict(clusters[context["cluster"]])
    if len(clusters) == 1:
        return dict(next(iter(clusters.values())))
    raise KubeconfigError("no current context naming one of its clusters")


def parse_admin_secret(secret: dict[str, Any], where: str) -> AdminKubeconfig:
    """The admin kubeconfig in `secret` (`where` names it in errors: "Secret ns/name")."""
    encoded = (secret.get("data") or {}).get(ADMIN_CONF_KEY)
    if not encoded:
        raise KubeconfigError(f'{where} has no key "{ADMIN_CONF_KEY}"')
    try:
        raw = base64.b64decode(str(encoded), validate=True)
        config = yaml.safe_load(raw)
    except (binascii.Error, yaml.YAMLError) as e:
        raise KubeconfigError(f'{where} key "{ADMIN_CONF_KEY}" is not a kubeconfig: {e}') from e
    if not isinstance(config, dict):
        raise KubeconfigError(f'{where} key "{ADMIN_CONF_KEY}" is not a kubeconfig')
    try:
        cluster = _current_cluster(config)
    except KubeconfigError as e:
        raise KubeconfigError(f'{where} key "{ADMIN_CONF_KEY}": {e}') from e
    server = str(cluster.get("server") or "")
    if urlsplit(server).scheme != "https" or not urlsplit(server).hostname:
        raise KubeconfigError(f'{where} key "{ADMIN_CONF_KEY}": server {server!r} is not an https:// URL')
    ca_data = cluster.get("certificate-authority-data")
    if not ca_data:
        raise KubeconfigError(
            f'{where} key "{ADMIN_CONF_KEY}": no certificate-authority-data (kubeadm join needs the CA to pin)'
        )
    try:
        ca_pem = base64.b64decode(str(ca_data), validate=True)
        ca_pin(ca_pem)
    except (binascii.Error, ValueError) as e:
        raise KubeconfigError(
            f'{where} key "{ADMIN_CONF_KEY}": certificate-authority-data is not a certificate: {e}'
        ) from e
    return AdminKubeconfig(config, raw, server, ca_pem)
