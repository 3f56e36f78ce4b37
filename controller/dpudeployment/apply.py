"""Writing a generated object so that it ends up exactly as generated (what DPF's server-side apply with force
ownership achieves): create it, or merge-patch its spec, nulling what the generator no longer sets, and make sure
it carries the owner label and reference. An object already as wanted (after the API server's defaults) is left
alone, so a reconcile that changes nothing writes nothing."""

from __future__ import annotations

from typing import Any

from controller.dpudeployment.names import OWNER_LABEL
from controller.kube.client import ApiError, KubeClient
from controller.kube.objects import Obj, is_deleting, labels_of, meta, name_of, namespace_of
from controller.kube.resources import ResourceType
from dpfd.api.defaults import apply_defaults


def merge_diff(current: Any, wanted: Any) -> Any:
    """A JSON merge patch turning `current` into `wanted` (keys `wanted` lacks become null)."""
    if not isinstance(current, dict) or not isinstance(wanted, dict):
        return wanted
    patch: dict[str, Any] = {k: None for k in current if k not in wanted}
    for k, v in wanted.items():
        if k not in current:
            patch[k] = v
        elif current[k] != v:
            patch[k] = merge_diff(current[k], v)
    return patch


def _owner_refs(current: Obj, desired: Obj) -> list[dict[str, Any]] | None:
    """The ownerReferences to write, or None when ours is there already."""
    have = list(meta(current).get("ownerReferences") or [])
    ours = (meta(desired).get("ownerReferences") or [])[0]
    if any(r.get("uid") == ours["uid"] for r in have):
        return None
    # One controller only: ours replaces another controller reference (DPF's force ownership).
    return [r for r in have if not r.get("controller")] + [ours]


def update_patch(current: Obj, desired: Obj) -> dict[str, Any] | None:
    """What to patch into `current` to make it `desired`; None when it already is."""
    wanted_spec = apply_defaults(desired).get("spec")
    patch: dict[str, Any] = {}
    if current.get("spec") != wanted_spec:
        patch["spec"] = merge_diff(current.get("spec") or {}, desired.get("spec") or {})
    owner = labels_of(desired)[OWNER_LABEL]
    md: dict[str, Any] = {}
    if labels_of(current).get(OWNER_LABEL) != owner:
        md["labels"] = {OWNER_LABEL: owner}
    refs = _owner_refs(current, desired)
    if refs is not None:
        md["ownerReferences"] = refs
    if md:
        patch["metadata"] = md
    return patch or None


async def apply(client: KubeClient, rt: ResourceType, current: Obj | None, desired: Obj) -> bool:
    """Make the object `desired`; `current` is the cached one (None if not seen). True if it was written.
    An object being deleted is left to go (it is created anew once gone)."""
    ns, name = namespace_of(desired), name_of(desired)
    if current is None:
        try:
            await client.create(rt, desired)
            return True
        except ApiError as exc:
            if not exc.already_exists:
                raise
            current = await client.get(rt, ns, name)  # the cache had not seen it yet
    if is_deleting(current):
        return False
    patch = update_patch(current, desired)
    if patch is None:
        return False
    await client.patch_no_result(rt, ns, name, patch)
    return True
