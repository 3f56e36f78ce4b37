"""The ServiceAccount in the target cluster and the tokens issued for it (the TokenRequest subresource)."""

from __future__ import annotations

from dataclasses import dataclass

from controller.credentials.refs import parse_time
from controller.credentials.targets import ReconcileError
from controller.kube.client import ApiError, KubeClient
from controller.kube.objects import Obj, ObjKey
from controller.kube.resources import SERVICE_ACCOUNTS

TOKEN_REQUEST_API_VERSION = "authentication.k8s.io/v1"


@dataclass(frozen=True)
class Token:
    value: str
    expires: float
    issued: float


async def apply_service_account(client: KubeClient, sa_key: ObjKey) -> None:
    """The ServiceAccount, with automountServiceAccountToken false (its token is not for pods)."""
    try:
        sa: Obj | None = await client.get(SERVICE_ACCOUNTS, sa_key.namespace, sa_key.name)
    except ApiError as e:
        if not e.not_found:
            raise
        sa = None
    if sa is None:
        await client.create(SERVICE_ACCOUNTS, {
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": sa_key.name, "namespace": sa_key.namespace},
            "automountServiceAccountToken": False,
        })  # fmt: skip
    elif sa.get("automountServiceAccountToken") is not False:
        await client.patch(SERVICE_ACCOUNTS, sa_key.namespace, sa_key.name, {"automountServiceAccountToken": False})


async def issue_token(client: KubeClient, sa_key: ObjKey, duration: int | None) -> Token:
    """Apply the ServiceAccount and ask for a token of `duration` seconds (the API's default lifetime when None).
    Raises ReconcileError."""
    try:
        await apply_service_account(client, sa_key)
    except ApiError as e:
        raise ReconcileError(f"error while patching ServiceAccount on target: {e}") from e
    body: Obj = {"apiVersion": TOKEN_REQUEST_API_VERSION, "kind": "TokenRequest", "spec": {}}
    if duration is not None:
        body["spec"]["expirationSeconds"] = duration
    try:
        answer = await client.create_subresource(SERVICE_ACCOUNTS, sa_key.namespace, sa_key.name, "token", body)
    except ApiError as e:
        raise ReconcileError(str(e)) from e
    status, spec = answer.get("status") or {}, answer.get("spec") or {}
    expires = parse_time(status.get("expirationTimestamp"))
    seconds = spec.get("expirationSeconds")
    if not status.get("token") or expires is None or not isinstance(seconds, int):
        raise ReconcileError(f"the TokenRequest for ServiceAccount {sa_key} was answered without a token")
    # issuedAt as DPF works it out: the expiry less the lifetime the API granted
    return Token(str(status["token"]), expires, expires - seconds)


async def delete_service_account(client: KubeClient, sa_key: ObjKey) -> None:
    """Raises ReconcileError; a ServiceAccount already gone is fine."""
    try:
        await client.delete(SERVICE_ACCOUNTS, sa_key.namespace, sa_key.name)
    except ApiError as e:
        if not e.not_found:
            raise ReconcileError(f"error while deleting ServiceAccount {sa_key}: {e}") from e
