"""Create-or-update of the objects the DPUService family owns, standing in for DPF's server-side apply: the object
is created when missing, otherwise brought to the desired labels, owner references and content (only what
differs is written; keys we do not set are removed from the content we own)."""

from __future__ import annotations

from typing import Any

from controller.chains.setobjects import merge_patch_to
from controller.kube.client import ApiError, KubeClient
from controller.kube.objects import Obj, resource_version_of
from controller.kube.resources import NAMESPACES, ResourceType

_META = ("apiVersion", "kind", "metadata")


def update_patch(current: Obj, desired: Obj) -> dict[str, Any]:
    """The merge patch bringing `current` to `desired` (empty when it already is)."""
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if key in _META:
            continue
        if current.get(key) != value:
            patch[key] = merge_patch_to(current.get(key), value)
    cur_meta, want_meta = current.get("metadata") or {}, desired.get("metadata") or {}
    meta: dict[str, Any] = {}
    labels = want_meta.get("labels") or {}
    if any((cur_meta.get("labels") or {}).get(k) != v for k, v in labels.items()):
        meta["labels"] = labels
    if "ownerReferences" in want_meta and cur_meta.get("ownerReferences") != want_meta["ownerReferences"]:
        meta["ownerReferences"] = want_meta["ownerReferences"]
    if meta:
        patch["metadata"] = meta
    if patch:
        patch.setdefault("metadata", {})["resourceVersion"] = resource_version_of(current)
    return patch


async def apply(client: KubeClient, rt: ResourceType, desired: Obj) -> bool:
    """Make the object `desired`; True if anything was written."""
    meta = desired.get("metadata") or {}
    namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    try:
        current = await client.get(rt, namespace, name)
    except ApiError as exc:
        if not exc.not_found:
            raise
        try:
            await client.create(rt, desired)
        except ApiError as exc2:
            if not exc2.already_exists:
                raise
            return await apply(client, rt, desired)  # someone else made it meanwhile: bring it to ours
        return True
    patch = update_patch(current, desired)
    if not patch:
        return False
    await client.patch_no_result(rt, namespace, name, patch)
    return True


async def ensure_namespace(client: KubeClient, name: str) -> bool:
    """Create Namespace `name` if it is not there; True if created."""
    try:
        await client.get(NAMESPACES, "", name)
        return False
    except ApiError as exc:
        if not exc.not_found:
            raise
    try:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    except ApiError as exc:
        if not exc.already_exists:
            raise
        return False
    return True


async def delete_if_present(client: KubeClient, rt: ResourceType, namespace: str, name: str) -> bool:
    try:
        await client.delete(rt, namespace, name)
    except ApiError as exc:
        if exc.not_found:
            return False
        raise
    return True
