"""SetWriter: keeps the ServiceInterfaceSet / ServiceChainSet objects in the DPU clusters, through the admin
clients of DpuClusters.

Once per connection to a DPU cluster it registers the chaining CRDs there (DPF's operator installs them; the
emulated API needs them too): created when missing, their spec brought up to date when it differs. A set is
read once (then remembered as last written) and only written when its metadata, spec or status changes. As
DPF's controllers watch the sets in the DPU clusters, an informer per cluster and set kind notices a set that
someone else changed or deleted: what is remembered of it is dropped and its parent reconciled again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from controller.chains.desired import SetNumbers
from controller.chains.family import FAMILIES, Family
from controller.chains.setobjects import dpu_cluster_crds, set_body, set_status_patch, set_update_patch
from controller.dpucluster import DpuClusters
from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import EventType, Informer
from controller.kube.objects import (
    Obj,
    ObjKey,
    describe,
    finalizer_patch,
    finalizers_of,
    is_deleting,
    key_of,
    resource_version_of,
)
from controller.kube.resources import NAMESPACES, ResourceType

log = logging.getLogger(__name__)

CRDS = ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)

_SetId = tuple[ObjKey, str, ObjKey]  # DPU cluster, set kind, set namespace/name
SetChanged = Callable[[str, ObjKey], None]  # (set kind, set key = its parent's key): reconcile the parent
_UNKNOWN: Obj = {}


def newer(obj: Obj, than: Obj) -> bool:
    """Whether `obj` is a later write than `than` (resourceVersions compared as etcd revisions when they are)."""
    a, b = resource_version_of(obj), resource_version_of(than)
    try:
        return int(a) > int(b)
    except ValueError:
        return a != b


async def install_crds(client: KubeClient) -> int:
    """Register the chaining CRDs in a DPU cluster; returns how many were created or updated."""
    changed = 0
    for crd in dpu_cluster_crds():
        name = crd["metadata"]["name"]
        try:
            await client.create(CRDS, dict(crd))
            changed += 1
            continue
        except ApiError as exc:
            if not exc.already_exists:
                raise
        have = await client.get(CRDS, "", name)
        if have.get("spec") != crd["spec"]:
            await client.patch_no_result(CRDS, "", name, {"spec": crd["spec"]})
            changed += 1
    return changed


class SetWriter:
    def __init__(self, access: DpuClusters, on_change: SetChanged | None = None) -> None:
        self.access = access
        self.on_change = on_change
        self._watches: dict[ObjKey, list[asyncio.Task[None]]] = {}
        self._set_up: dict[ObjKey, KubeClient] = {}  # cluster -> the client its CRDs were registered through
        self._setup_locks: dict[ObjKey, asyncio.Lock] = {}
        self._namespaces: set[tuple[ObjKey, str]] = set()
        self._seen: dict[_SetId, Obj | None] = {}  # last read or written; None: known absent
        self.writes = 0

    def reachable(self, cluster: ObjKey) -> bool:
        """Connected, with its Nodes listed: worth writing to now (others are retried when their Nodes come)."""
        return self.access.nodes(cluster) is not None

    async def _client(self, cluster: ObjKey) -> KubeClient:
        self._prune()
        client = await self.access.admin_client(cluster)
        if self._set_up.get(cluster) is client:
            return client
        async with self._setup_locks.setdefault(cluster, asyncio.Lock()):
            if self._set_up.get(cluster) is not client:
                changed = await install_crds(client)
                # A new connection may be a new cluster: nothing remembered about it holds.
                self._forget(cluster)
                self._set_up[cluster] = client
                self._watch(cluster, client)
                log.info("chaining CRDs registered", extra={"object": f"DPUCluster {cluster}", "changed": changed})
        return client

    def _forget(self, cluster: ObjKey) -> None:
        self._namespaces = {n for n in self._namespaces if n[0] != cluster}
        self._seen = {k: v for k, v in self._seen.items() if k[0] != cluster}
        self._set_up.pop(cluster, None)
        for task in self._watches.pop(cluster, []):
            task.cancel()

    def _prune(self) -> None:
        """Stop watching clusters no longer watched by DpuClusters (a deleted DPUCluster)."""
        for cluster in [c for c in self._set_up if c not in self.access.keys()]:  # noqa: SIM118 (not a dict)
            self._forget(cluster)

    def _watch(self, cluster: ObjKey, client: KubeClient) -> None:
        if self.on_change is None:
            return
        tasks = []
        for family in FAMILIES:
            informer = Informer(client, family.set_resource, resync_period=0)
            informer.add_handler(self._on_set_event(cluster, family.set_kind))
            name = f"watch-{family.set_resource.plural}-{cluster}"
            tasks.append(asyncio.create_task(informer.run(), name=name))
        self._watches[cluster] = tasks

    def _on_set_event(self, cluster: ObjKey, kind: str) -> Callable[[EventType, Obj, Obj | None], None]:
        def on_event(event: EventType, obj: Obj, old: Obj | None) -> None:
            key = key_of(obj)
            sid = (cluster, kind, key)
            seen = self._seen.get(sid, _UNKNOWN)
            if event == "RESYNC" or (event == "DELETED" and seen is None):
                return
            if event != "DELETED" and seen is not None and seen is not _UNKNOWN and not newer(obj, seen):
                return  # our own write (or an older one)
            self._seen.pop(sid, None)
            if self.on_change is not None:
                self.on_change(kind, key)

        return on_event

    async def close(self) -> None:
        tasks = [t for ts in self._watches.values() for t in ts]
        self._watches.clear()
        self._set_up.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    async def _ensure_namespace(self, client: KubeClient, cluster: ObjKey, namespace: str) -> None:
        if (cluster, namespace) in self._namespaces:
            return
        try:
            await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        except ApiError as exc:
            if not exc.already_exists:
                raise
        self._namespaces.add((cluster, namespace))

    async def _current(self, client: KubeClient, sid: _SetId, rt: ResourceType) -> Obj | None:
        if sid in self._seen:
            return self._seen[sid]
        key = sid[2]
        try:
            found: Obj | None = await client.get(rt, key.namespace, key.name)
        except ApiError as exc:
            if not exc.not_found:
                raise
            found = None
        self._seen[sid] = found
        return found

    async def apply(self, family: Family, parent: Obj, cluster: ObjKey, numbers: SetNumbers) -> None:
        """The parent's set in `cluster` as DPF writes it, with these numbers; while the parent is deleting, the
        set is deleted (held by its finalizer) and says what it waits for."""
        client = await self._client(cluster)
        rt, key, deleting = family.set_resource, key_of(parent), is_deleting(parent)
        sid = (cluster, family.set_kind, key)
        try:
            current = await self._current(client, sid, rt)
            desired = set_body(family, parent)
            if current is not None and is_deleting(current) and not deleting:
                # Deleted by someone else: let it go and write it anew, as DPF's set controller (releasing its
                # finalizer) and the parent's controller (applying the set again) end up doing.
                await self._release(client, rt, key, current, family)
                current = None
            if current is None:
                if deleting:
                    return  # nothing to hold
                await self._ensure_namespace(client, cluster, key.namespace)
                current = await client.create(rt, desired)
                self.writes += 1
            elif not is_deleting(current) and (patch := set_update_patch(current, desired)) is not None:
                current = await client.patch(rt, key.namespace, key.name, patch)
                self.writes += 1
            if deleting and not is_deleting(current):
                await client.delete(rt, key.namespace, key.name)
                current = await client.get(rt, key.namespace, key.name)
                self.writes += 1
            status = set_status_patch(family, current, numbers, deleting=deleting or is_deleting(current))
            if status is not None:
                current = await client.patch(rt, key.namespace, key.name, {"status": status}, subresource="status")
                self.writes += 1
        except ApiError:
            self._seen.pop(sid, None)  # read it again next time
            raise
        self._seen[sid] = current

    async def _release(self, client: KubeClient, rt: ResourceType, key: ObjKey, current: Obj, family: Family) -> None:
        """Drop our finalizer from the set (guarded by its resourceVersion)."""
        if family.set_finalizer in finalizers_of(current):
            keep = [f for f in finalizers_of(current) if f != family.set_finalizer]
            await client.patch_no_result(rt, key.namespace, key.name, finalizer_patch(current, keep))
            self.writes += 1

    async def remove(self, family: Family, key: ObjKey, cluster: ObjKey) -> None:
        """The set `key` gone from `cluster`: our finalizer released and the set deleted."""
        sid = (cluster, family.set_kind, key)
        if sid in self._seen and self._seen[sid] is None:
            return
        client = await self._client(cluster)
        rt = family.set_resource
        try:
            current = await self._current(client, sid, rt)
            if current is None:
                return
            await self._release(client, rt, key, current, family)
            if not is_deleting(current):
                await client.delete(rt, key.namespace, key.name)
                self.writes += 1
        except ApiError as exc:
            if not exc.not_found:
                self._seen.pop(sid, None)
                raise
        self._seen[sid] = None
        log.info("removed", extra={"object": describe(family.set_kind, key), "cluster": str(cluster)})
