"""The Secret in the host cluster that carries the credential: an Opaque Secret with spec.metadata's labels and
annotations, its data replaced when a new token comes and kept otherwise."""

from __future__ import annotations

from controller.credentials.targets import ReconcileError
from controller.kube.client import ApiError, KubeClient
from controller.kube.objects import Obj, ObjKey, meta
from controller.kube.resources import SECRETS


async def read_secret(client: KubeClient, where: ObjKey) -> Obj | None:
    try:
        return await client.get(SECRETS, where.namespace, where.name)
    except ApiError as e:
        if e.not_found:
            return None
        raise ReconcileError(f"error while getting Secret {where}: {e}") from e


async def delete_secret(client: KubeClient, where: ObjKey) -> dict[str, str] | None:
    """Delete it; its data (None when it was not there), to move to a renamed Secret."""
    old = await read_secret(client, where)
    if old is None:
        return None
    try:
        await client.delete(SECRETS, where.namespace, where.name)
    except ApiError as e:
        if not e.not_found:
            raise ReconcileError(f"error while deleting Secret {where}: {e}") from e
    data = old.get("data")
    return dict(data) if isinstance(data, dict) else None


def _new_secret(where: ObjKey, data: dict[str, str] | None, labels: Obj | None, annotations: Obj | None) -> Obj:
    secret_meta: Obj = {"name": where.name, "namespace": where.namespace}
    if labels:
        secret_meta["labels"] = labels
    if annotations:
        secret_meta["annotations"] = annotations
    secret: Obj = {"apiVersion": "v1", "kind": "Secret", "metadata": secret_meta, "type": "Opaque"}
    if data:
        secret["data"] = data
    return secret


async def write_secret(client: KubeClient, where: ObjKey, data: dict[str, str] | None, template: Obj) -> None:
    """Create the Secret, or bring its data (None: keep what it holds), labels and annotations to what they should
    be. Raises ReconcileError."""
    labels, annotations = template.get("labels") or None, template.get("annotations") or None
    current = await read_secret(client, where)
    try:
        if current is None:
            await client.create(SECRETS, _new_secret(where, data, labels, annotations))
            return
        patch: Obj = {}
        if data is not None and current.get("data") != data:
            patch["data"] = {**{k: None for k in current.get("data") or {} if k not in data}, **data}
        current_meta = meta(current)
        meta_patch = {name: wanted for name, wanted in (("labels", labels), ("annotations", annotations))
                      if wanted and any((current_meta.get(name) or {}).get(k) != v for k, v in wanted.items())}  # fmt: skip
        if meta_patch:
            patch["metadata"] = meta_patch
        if patch:
            await client.patch(SECRETS, where.namespace, where.name, patch)
    except ApiError as e:
        raise ReconcileError(str(e)) from e
