"""Bootstrap tokens for DPUs joining a DPU cluster, made as `kubeadm token create` makes them."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import string
from dataclasses import dataclass
from typing import Any

BOOTSTRAP_TOKEN_TYPE = "bootstrap.kubernetes.io/token"
TOKEN_NAMESPACE = "kube-system"
TOKEN_PREFIX = "bootstrap-token-"
DESCRIPTION = "DPF: DPUs joining this DPU cluster (made by the DPF controller)"
EXTRA_GROUPS = "system:bootstrappers:kubeadm:default-node-token"  # kubeadm's default for node joins
_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class BootstrapToken:
    token_id: str
    secret: str
    expires: float  # seconds since the epoch

    @property
    def value(self) -> str:
        return f"{self.token_id}.{self.secret}"

    @property
    def secret_name(self) -> str:
        return TOKEN_PREFIX + self.token_id


def new_token(now: float, ttl: float) -> BootstrapToken:
    def pick(n: int) -> str:
        return "".join(secrets.choice(_ALPHABET) for _ in range(n))

    return BootstrapToken(pick(6), pick(16), float(int(now + ttl)))


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_secret(token: BootstrapToken) -> dict[str, Any]:
    data = {
        "description": DESCRIPTION,
        "token-id": token.token_id,
        "token-secret": token.secret,
        "expiration": rfc3339(token.expires),
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": EXTRA_GROUPS,
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": token.secret_name, "namespace": TOKEN_NAMESPACE},
        "type": BOOTSTRAP_TOKEN_TYPE,
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def ours(secret: dict[str, Any]) -> BootstrapToken | None:
    """The token in a Secret this controller made (None for anything else: kubeadm's own tokens, other Secrets)."""
    if secret.get("type") != BOOTSTRAP_TOKEN_TYPE or (secret.get("metadata") or {}).get("deletionTimestamp"):
        return None
    data: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
    if data.get("description") != DESCRIPTION:
        return None
    if data.get("usage-bootstrap-authentication") != "true" or data.get("usage-bootstrap-signing") != "true":
        return None
    try:
        expires = dt.datetime.fromisoformat(data.get("expiration", "")).timestamp()
    except ValueError:
        return None
    return BootstrapToken(data.get("token-id", ""), data.get("token-secret", ""), expires)
