"""SetWriter: keeps the ServiceInterfaceSet / ServiceChainSet objects in the DPU clusters, through the admin
clients of DpuClusters.

Once per connection to a DPU cluster it registers the chaining CRDs there (DPF's operator installs them; the
emulated API needs them too): created when missing, their spec brought up to date when it differs. A set is
read once (then remembered as last written) and only written when its metadata, spec or status changes.
"""

from __future__ import annotations

import asyncio
import logging

from controller.chains.desired import SetNumbers
from controller.chains.family import Family
from controller.chains.setobjects import dpu_cluster_crds, set_body, set_status_patch, set_update_patch
from controller.dpucluster import DpuClusters
from controller.kube.client import ApiError, KubeClient
from controller.kube.objects import Obj, ObjKey, describe, finalizer_patch, finalizers_of, is_deleting, key_of
from controller.kube.resources import ResourceType

log = logging.getLogger(__name__)

CRDS = ResourceType("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)
NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", namespaced=False)

_SetId = tuple[ObjKey, str, ObjKey]  # DPU cluster, set kind, set namespace/name


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
    def __init__(self, access: DpuClusters) -> None:
        self.access = access
        self._set_up: dict[ObjKey, KubeClient] = {}  # cluster -> the client its CRDs were registered through
        self._setup_locks: dict[ObjKey, asyncio.Lock] = {}
        self._namespaces: set[tuple[ObjKey, str]] = set()
        self._seen: dict[_SetId, Obj | None] = {}  # last read or written; None: known absent
        self.writes = 0

    def reachable(self, cluster: ObjKey) -> bool:
        """Connected, with its Nodes listed: worth writing to now (others are retried when their Nodes come)."""
        return self.access.nodes(cluster) is not None

    async def _client(self, cluster: ObjKey) -> KubeClient:
        client = await self.access.admin_client(cluster)
        if self._set_up.get(cluster) is client:
            return client
        async with self._setup_locks.setdefault(cluster, asyncio.Lock()):
            if self._set_up.get(cluster) is not client:
                changed = await install_crds(client)
                # A new connection may be a new cluster: nothing remembered about it holds.
                self._namespaces = {n for n in self._namespaces if n[0] != cluster}
                self._seen = {k: v for k, v in self._seen.items() if k[0] != cluster}
                self._set_up[cluster] = client
                log.info("chaining CRDs registered", extra={"object": f"DPUCluster {cluster}", "changed": changed})
        return client

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
            if family.set_finalizer in finalizers_of(current):
                keep = [f for f in finalizers_of(current) if f != family.set_finalizer]
                await client.patch_no_result(rt, key.namespace, key.name, finalizer_patch(current, keep))
                self.writes += 1
            if not is_deleting(current):
                await client.delete(rt, key.namespace, key.name)
                self.writes += 1
        except ApiError as exc:
            if not exc.not_found:
                self._seen.pop(sid, None)
                raise
        self._seen[sid] = None
        log.info("removed", extra={"object": describe(family.set_kind, key), "cluster": str(cluster)})
