"""ServiceAccount tokens as the API server issues and checks them.

Issuing is the TokenRequest subresource (`POST /api/v1/namespaces/{ns}/serviceaccounts/{name}/token`,
authentication.k8s.io/v1), after pkg/registry/core/serviceaccount/storage/token.go: spec.expirationSeconds
defaults to 3600 and must lie in [600, 2^32], audiences default to the API's, an optional boundObjectRef names a
Pod, Secret or Node that must exist (and match its uid), and the answer carries status.token and
status.expirationTimestamp.

The tokens are JWTs with the claims Kubernetes puts in them (iss, sub, aud, exp, iat, nbf, jti, kubernetes.io),
signed with HMAC-SHA256 under the server's key (Kubernetes signs with RSA; nobody outside verifies ours).
Checking follows the service-account authenticator: signature, time window, audience, and the ServiceAccount
(and any bound object) still there with the uid the token names.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from dpfd.sim.kubeapi import errors
from dpfd.sim.kubeapi.errors import ApiError
from dpfd.sim.kubeapi.resources import ResourceType
from dpfd.sim.kubeapi.store import Store

Obj = dict[str, Any]
# kubeadm's --service-account-issuer; the API audiences default to it.
ISSUER = "https://kubernetes.default.svc.cluster.local"
API_AUDIENCES = (ISSUER,)
DEFAULT_EXPIRATION = 3600  # SetDefaults_TokenRequestSpec
MIN_EXPIRATION = 600  # ValidateTokenRequest: "may not specify a duration less than 10 minutes"
MAX_EXPIRATION = 1 << 32
TOKEN_REQUEST_API_VERSION = "authentication.k8s.io/v1"
SERVICE_ACCOUNTS = ("", "serviceaccounts")
# The kinds a token may be bound to, and where they live (namespaced or not).
BINDABLE = {"Pod": (("", "pods"), True), "Secret": (("", "secrets"), True), "Node": (("", "nodes"), False)}
TOKEN_REQUEST_TYPE = ResourceType(
    "authentication.k8s.io", "TokenRequest", "tokenrequests", "tokenrequest", True, ("v1",), "v1"
)


class InvalidToken(Exception):
    """A token that looks like a ServiceAccount token but does not authenticate (the API answers 401)."""


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _uid(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


class ServiceAccountTokens:
    """Issues and checks the tokens of one API server (`key` signs them)."""

    def __init__(self, store: Store, key: bytes, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.key = key
        self.clock = clock

    # -- issuing ------------------------------------------------------------------------------------
    def issue(self, sa_type: ResourceType, namespace: str, name: str, body: Any) -> Obj:
        """The TokenRequest answer for ServiceAccount namespace/name; raises ApiError as the API server would."""
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise errors.bad_request("the body of a TokenRequest must be a JSON object")
        meta = dict(body.get("metadata") or {})
        spec = dict(body.get("spec") or {})
        if meta.get("name") and meta["name"] != name:
            raise errors.invalid(
                TOKEN_REQUEST_TYPE, name,
                [("metadata.name", f'Invalid value: "{meta["name"]}": must match the service account name if specified')],
            )  # fmt: skip
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.invalid(
                TOKEN_REQUEST_TYPE, name,
                [("metadata.namespace", f'Invalid value: "{meta["namespace"]}": must match the service account '
                  "namespace if specified")],
            )  # fmt: skip
        sa = self.store.get(SERVICE_ACCOUNTS, namespace, name)
        if sa is None:
            raise errors.not_found(sa_type, name)
        expiration = spec.get("expirationSeconds")
        if expiration is None:
            expiration = DEFAULT_EXPIRATION
        if isinstance(expiration, bool) or not isinstance(expiration, int):
            raise errors.bad_request(f"spec.expirationSeconds: {expiration!r} is not an integer")
        if expiration < MIN_EXPIRATION:
            raise errors.invalid(
                TOKEN_REQUEST_TYPE, "",
                [("spec.expirationSeconds", f"Invalid value: {expiration}: may not specify a duration less than 10 minutes")],
            )  # fmt: skip
        if expiration > MAX_EXPIRATION:
            raise errors.invalid(
                TOKEN_REQUEST_TYPE, "",
                [("spec.expirationSeconds", f"Invalid value: {expiration}: may not specify a duration larger than 2^32 seconds")],
            )  # fmt: skip
        audiences = [str(a) for a in spec.get("audiences") or []] or list(API_AUDIENCES)
        ref = spec.get("boundObjectRef")
        bound = self._bound_object(name, namespace, ref) if ref else None
        now = self.clock()
        claims: Obj = {
            "aud": audiences,
            "exp": int(now) + expiration,
            "iat": int(now),
            "iss": ISSUER,
            "jti": str(uuid.uuid4()),
            "nbf": int(now),
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": _uid(sa)}},
        }
        if bound is not None:
            kind, obj = bound
            claims["kubernetes.io"][kind.lower()] = {"name": obj["metadata"]["name"], "uid": _uid(obj)}
        out_spec: Obj = {"audiences": audiences, "expirationSeconds": expiration, "boundObjectRef": ref or None}
        return {
            "kind": "TokenRequest",
            "apiVersion": TOKEN_REQUEST_API_VERSION,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": _uid(sa),
                "creationTimestamp": rfc3339(now),
            },
            "spec": out_spec,
            "status": {"token": self._sign(claims), "expirationTimestamp": rfc3339(now + expiration)},
        }

    def _bound_object(self, sa_name: str, namespace: str, ref: Any) -> tuple[str, Obj]:
        if not isinstance(ref, dict):
            raise errors.bad_request("spec.boundObjectRef must be an object")
        api_version, kind, name = (
            str(ref.get("apiVersion") or ""),
            str(ref.get("kind") or ""),
            str(ref.get("name") or ""),
        )
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        if group or kind not in BINDABLE:
            raise errors.bad_request(f"cannot bind token to object of type {api_version}, Kind={kind}")
        key, namespaced = BINDABLE[kind]
        obj = self.store.get(key, namespace if namespaced else "", name)
        if obj is None:
            plural = key[1]
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found', {"name": name, "kind": plural})
        if kind == "Pod" and (obj.get("spec") or {}).get("serviceAccountName", "default") != sa_name:
            raise errors.bad_request(
                f'cannot bind token for serviceaccount "{sa_name}" to pod running with different serviceaccount name.'
            )
        if ref.get("uid") and ref["uid"] != _uid(obj):
            raise ApiError(
                409, "Conflict",
                f'Operation cannot be fulfilled on {kind} "{name}": the UID in the bound object reference '
                f"({ref['uid']}) does not match the UID in record. The object might have been deleted and then recreated",
            )  # fmt: skip
        return kind, obj

    def _sign(self, claims: Obj) -> str:
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = hmac.new(self.key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64(signature)}"

    # -- checking -----------------------------------------------------------------------------------
    def verify(self, token: str) -> tuple[str, str, str]:
        """(namespace, name, uid) of the ServiceAccount the token speaks for; raises InvalidToken."""
        parts = token.split(".")
        if len(parts) != 3:
            raise InvalidToken("not a JWT")
        header, payload, signature = parts
        expected = hmac.new(self.key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        try:
            if not hmac.compare_digest(_unb64(signature), expected):
                raise InvalidToken("bad signature")
            claims = json.loads(_unb64(payload))
        except (binascii.Error, ValueError) as e:
            raise InvalidToken("malformed token") from e
        if not isinstance(claims, dict):
            raise InvalidToken("malformed claims")
        now = self.clock()
        if now >= float(claims.get("exp", 0)) or now < float(claims.get("nbf", 0)) - 60:
            raise InvalidToken("token expired or not yet valid")
        if not set(claims.get("aud") or []) & set(API_AUDIENCES):
            raise InvalidToken("token audiences do not include the API's")
        private = claims.get("kubernetes.io") or {}
        namespace = str(private.get("namespace", ""))
        account = private.get("serviceaccount") or {}
        name, uid = str(account.get("name", "")), str(account.get("uid", ""))
        sa = self.store.get(SERVICE_ACCOUNTS, namespace, name)
        if sa is None or _uid(sa) != uid:
            raise InvalidToken(f"service account {namespace}/{name} has been deleted")
        for kind, (key, namespaced) in BINDABLE.items():
            ref = private.get(kind.lower())
            if not ref:
                continue
            obj = self.store.get(key, namespace if namespaced else "", str(ref.get("name", "")))
            if obj is None or _uid(obj) != ref.get("uid"):
                raise InvalidToken(f"the {kind} the token is bound to has been deleted")
        return namespace, name, uid


def signing_key(admin_token: str) -> bytes:
    """The server's token signing key, derived from its admin token so tokens outlive a restart as it does."""
    return hmac.new(admin_token.encode(), b"dpf-sim service account token signing key", hashlib.sha256).digest()
