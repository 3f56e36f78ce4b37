"""Authentication and a small authorizer for the emulated API served over TLS, shaped like a kubeadm cluster.

Who may do what:
* the admin token (the kubeconfig's user): everything (system:masters);
* a bootstrap token `<id>.<secret>` backed by a valid Secret kube-system/bootstrap-token-<id>: what a joining
  node needs (discovery, read kubeadm's ConfigMaps, register and update its Node);
* a ServiceAccount token (a TokenRequest's, see sa_tokens.py): system:serviceaccount:<ns>:<name>, which like any
  authenticated user without RBAC bindings may use discovery and nothing else (there is no RBAC here);
* no token (system:anonymous): /version, the health endpoints, and kube-public/cluster-info, as kubeadm's
  RBAC rules allow.
A bearer token that matches nothing answers 401 Unauthorized; an identity without the permission, 403.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dpfd.sim import bootstrap_tokens as bootstrap
from dpfd.sim.kubeapi.errors import ApiError
from dpfd.sim.kubeapi.resources import ResourceType
from dpfd.sim.kubeapi.sa_tokens import InvalidToken, ServiceAccountTokens, looks_like_jwt
from dpfd.sim.kubeapi.store import Store

SECRETS = ("", "secrets")
PUBLIC_PATHS = frozenset({"/version", "/version/", "/healthz", "/livez", "/readyz"})
# Verbs a joining node's bootstrap identity has on its Node (kubeadm's node bootstrapper and node roles, folded).
NODE_VERBS = frozenset({"get", "list", "watch", "create", "update", "patch"})


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "system:masters" in self.groups

    @property
    def is_bootstrap(self) -> bool:
        return "system:bootstrappers" in self.groups


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))
ADMIN = User("kubernetes-admin", ("system:masters", "system:authenticated"))


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def verb_of(method: str, named: bool, watch: bool) -> str:
    if method == "GET":
        return "watch" if watch else ("get" if named else "list")
    if method == "DELETE":
        return "delete" if named else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def service_account_user(namespace: str, name: str) -> User:
    return User(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"),
    )


class Authenticator:
    def __init__(
        self,
        store: Store,
        admin_token: str,
        clock: Callable[[], float] = time.time,
        tokens: ServiceAccountTokens | None = None,
    ) -> None:
        self.store = store
        self.admin_token = admin_token
        self.clock = clock
        self.tokens = tokens

    # -- authentication ---------------------------------------------------------------------------
    def authenticate(self, headers: Mapping[str, str]) -> User:
        """The request's identity; raises 401 for a bearer token that is not the admin's, a valid bootstrap token
        or a valid ServiceAccount token (as the API server does: a bad credential is never downgraded to
        anonymous)."""
        header = headers.get("Authorization", "")
        if not header:
            return ANONYMOUS
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized()
        if hmac.compare_digest(token.encode(), self.admin_token.encode()):
            return ADMIN
        if self.tokens is not None and looks_like_jwt(token):
            try:
                namespace, name, _ = self.tokens.verify(token)
            except InvalidToken as e:
                raise unauthorized() from e
            return service_account_user(namespace, name)
        parsed = bootstrap.parse_token(token)
        if parsed is None:
            raise unauthorized()
        token_id, token_secret = parsed
        secret = self.store.get(SECRETS, bootstrap.SECRET_NAMESPACE, bootstrap.SECRET_PREFIX + token_id)
        problem = bootstrap.token_problem(secret, token_id, token_secret, bootstrap.USAGE_AUTHENTICATION, self.clock())
        if problem is not None or secret is None:
            raise unauthorized()
        groups = ("system:bootstrappers", *bootstrap.extra_groups(secret), "system:authenticated")
        return User(f"system:bootstrap:{token_id}", groups)

    # -- authorization ----------------------------------------------------------------------------
    def authorize_path(self, user: User, method: str, path: str) -> None:
        """Non-resource URLs: discovery, OpenAPI, version and health."""
        if user.is_admin:
            return
        verb = method.lower()
        if verb == "get" and path in PUBLIC_PATHS:
            return
        if verb == "get" and user is not ANONYMOUS and _discovery_path(path):
            return
        raise ApiError(403, "Forbidden", f'forbidden: User "{user.name}" cannot {verb} path "{path}"', {})

    def authorize_resource(
        self, user: User, verb: str, rt: ResourceType, namespace: str | None, name: str | None, sub: str | None
    ) -> None:
        if user.is_admin or self._allowed(user, verb, rt, namespace, name, sub):
            return
        resource = rt.plural + (f"/{sub}" if sub else "")
        what = f'{rt.qualified} "{name}"' if name else rt.qualified
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        details: dict[str, Any] = {"kind": rt.plural}
        if name:
            details["name"] = name
        if rt.group:
            details["group"] = rt.group
        raise ApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{user.name}" cannot {verb} resource "{resource}" '
            f'in API group "{rt.group}" {scope}',
            details,
        )

    @staticmethod
    def _allowed(
        user: User, verb: str, rt: ResourceType, namespace: str | None, name: str | None, sub: str | None
    ) -> bool:
        cluster_info = (
            rt.key == ("", "configmaps")
            and namespace == bootstrap.CLUSTER_INFO_NAMESPACE
            and name == bootstrap.CLUSTER_INFO_NAME
            and sub is None
        )
        if verb == "get" and cluster_info:
            return True
        if not user.is_bootstrap:
            return False
        if rt.key == ("", "nodes") and sub in (None, "status"):
            return verb in NODE_VERBS
        return rt.key == ("", "configmaps") and verb == "get" and namespace in ("kube-system", "kube-public")

    # -- the bootstrap signer -----------------------------------------------------------------------
    def signed_cluster_info(self, obj: dict[str, Any]) -> dict[str, Any]:
        """cluster-info with a `jws-kubeconfig-<id>` entry per valid signing token, as kube-controller-manager's
        bootstrap signer keeps it (computed when read, so an expired or deleted token's signature is gone)."""
        data = dict(obj.get("data") or {})
        content = data.get("kubeconfig")
        for key in [k for k in data if k.startswith(bootstrap.JWS_PREFIX)]:
            del data[key]
        if isinstance(content, str):
            now = self.clock()
            for secret in self.store.in_scope(SECRETS, bootstrap.SECRET_NAMESPACE):
                fields = bootstrap.secret_data(secret)
                token_id, token_secret = fields.get("token-id", ""), fields.get("token-secret", "")
                name = str((secret.get("metadata") or {}).get("name", ""))
                if (
                    name != bootstrap.SECRET_PREFIX + token_id
                    or bootstrap.parse_token(f"{token_id}.{token_secret}") is None
                ):
                    continue
                if bootstrap.token_problem(secret, token_id, token_secret, bootstrap.USAGE_SIGNING, now) is None:
                    data[bootstrap.JWS_PREFIX + token_id] = bootstrap.detached_signature(
                        content, token_id, token_secret
                    )
        return {**obj, "data": data}


def _discovery_path(path: str) -> bool:
    """What system:discovery grants every authenticated user."""
    p = path.rstrip("/") or "/"
    return p in ("/", "/api", "/apis", "/openapi", "/version") or p.startswith(("/api/", "/apis/", "/openapi/"))
