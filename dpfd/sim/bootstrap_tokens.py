"""Bootstrap tokens as k8s.io/cluster-bootstrap defines them: the token format, the Secret that holds one,
and the detached JWS that signs the cluster-info ConfigMap for token discovery.

Shared by the emulated API server (authentication, signing) and the emulated kubeadm (verification), as the
real API server, controller manager and kubeadm share that library.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
from typing import Any

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
SECRET_NAMESPACE = "kube-system"
JWS_PREFIX = "jws-kubeconfig-"
CLUSTER_INFO_NAMESPACE = "kube-public"
CLUSTER_INFO_NAME = "cluster-info"
USAGE_AUTHENTICATION = "usage-bootstrap-authentication"
USAGE_SIGNING = "usage-bootstrap-signing"


def parse_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed `<id>.<secret>` token, else None."""
    m = TOKEN_RE.match(token)
    return (m.group(1), m.group(2)) if m else None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def detached_signature(content: str, token_id: str, token_secret: str) -> str:
    """The compact JWS (HS256, key = token secret, kid = token id) of `content`, payload left out:
    `<header>..<signature>`, what the bootstrap signer stores as `jws-kubeconfig-<id>`."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(content.encode())}"
    mac = hmac.new(token_secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{header}..{_b64url(mac)}"


def signature_valid(content: str, signature: str, token_id: str, token_secret: str) -> bool:
    return hmac.compare_digest(detached_signature(content, token_id, token_secret), signature)


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    """The decoded `data` of a Secret (values that are not valid base64 UTF-8 are left out)."""
    out: dict[str, str] = {}
    for key, value in (secret.get("data") or {}).items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            continue
    return out


def parse_expiration(value: str) -> dt.datetime | None:
    """An RFC 3339 time (the `expiration` key), None when malformed."""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def token_problem(
    secret: dict[str, Any] | None, token_id: str, token_secret: str, usage: str, now: float
) -> str | None:
    """Why `secret` does not make `<token_id>.<token_secret>` valid for `usage` (None: it does)."""
    if secret is None:
        return f"no Secret {SECRET_NAMESPACE}/{SECRET_PREFIX}{token_id}"
    if secret.get("type") != SECRET_TYPE:
        return f"Secret type is {secret.get('type')!r}, not {SECRET_TYPE!r}"
    if (secret.get("metadata") or {}).get("deletionTimestamp"):
        return "the Secret is being deleted"
    data = secret_data(secret)
    if data.get("token-id", token_id) != token_id:
        return "token-id does not match the Secret's name"
    if not hmac.compare_digest(data.get("token-secret", ""), token_secret):
        return "wrong token secret"
    if "expiration" in data:
        when = parse_expiration(data["expiration"])
        if when is None:
            return f"malformed expiration {data['expiration']!r}"
        if when.timestamp() <= now:
            return f"expired at {data['expiration']}"
    if data.get(usage) != "true":
        return f"{usage} is not true"
    return None


def extra_groups(secret: dict[str, Any]) -> tuple[str, ...]:
    groups = secret_data(secret).get("auth-extra-groups", "")
    return tuple(g for g in groups.split(",") if g)
