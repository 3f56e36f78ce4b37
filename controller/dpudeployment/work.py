"""One leadership term's DPUDeployment work, in the controller-runtime `Reconcile(key)` model.

Each run reads the DPUDeployment and what it consumes from caches, checks the prerequisites (PrerequisitesReady)
and that the services fit the flavor (ResourceFittingReady), marks what it consumes, writes the generated
DPUServiceInterfaces, DPUServices, DPUServiceChain and DPUSets (deleting children it no longer generates) and
reports each kind's Reconciled and Ready conditions. Deletion follows DPF's finalizer: chains, interfaces and
services are deleted and awaited first (their DPU-cluster side is undone while the DPUs are still there), then
the DPUSets, then what it consumed is released and the finalizer goes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import ValidationError

from controller.chains.family import DPUSERVICECHAINS, DPUSERVICEINTERFACES
from controller.chains.status import status_patch
from controller.dpudeployment.apply import apply
from controller.dpudeployment.dependencies import (
    DependencyInformers,
    MissingDependency,
    consumers,
    deployment_keys_using,
    gather,
    mark_patch,
    marked_for,
)
from controller.dpudeployment.fitting import fitting_problem, missing_resources
from controller.dpudeployment.generate import Desired, generate
from controller.dpudeployment.names import (
    CHILD_CONDITIONS,
    CHILD_KINDS,
    COND_FITTING,
    COND_PREREQS,
    DPUDEPLOYMENTS,
    DPUSERVICES,
    FINALIZER,
    OWNER_LABEL,
    REASON_AWAITING_DELETION,
    REASON_ERROR,
    REASON_FAILURE,
    REASON_PENDING,
    owner_value,
)
from controller.dpudeployment.status import Conditions, not_ready
from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import EventType, Handler, Informer
from controller.kube.objects import (
    Obj,
    ObjKey,
    describe,
    finalizer_patch,
    finalizers_of,
    generation_of,
    is_deleting,
    key_of,
    labels_of,
    name_of,
    uid_of,
)
from controller.kube.resources import DPUSETS, ResourceType
from controller.object_work import ObjectWork
from controller.queue import DONE, Result
from controller.reconcilers.provisioning import status_only_change
from dpfd.api.services import DPUDeployment

log = logging.getLogger(__name__)
KIND = DPUDEPLOYMENTS.kind
OWNER_INDEX = "owned-by-dpudeployment"
DELETE_REQUEUE = 10.0  # seconds between checks while children are going (DPF v24.10's delete requeue)


@dataclass
class DeploymentInformers:
    """The caches the work reads. The manager already keeps dpusets, service_interfaces, service_chains, bfbs
    and flavors; deployments, services, templates and configurations are new."""

    deployments: Informer
    templates: Informer
    configurations: Informer
    bfbs: Informer
    flavors: Informer
    dpusets: Informer
    services: Informer
    interfaces: Informer
    chains: Informer

    def children(self) -> list[tuple[ResourceType, Informer]]:
        """In deletion order."""
        by_kind = {
            DPUSERVICECHAINS.kind: self.chains,
            DPUSERVICEINTERFACES.kind: self.interfaces,
            DPUSERVICES.kind: self.services,
            DPUSETS.kind: self.dpusets,
        }
        return [(rt, by_kind[rt.kind]) for rt in CHILD_KINDS]

    def dependencies(self) -> DependencyInformers:
        return DependencyInformers(self.bfbs, self.flavors, self.templates, self.configurations)


def _owner_of(obj: Obj) -> ObjKey | None:
    """The DPUDeployment a child's owner label names (`<ns>_<name>`)."""
    value = labels_of(obj).get(OWNER_LABEL)
    if not value or "_" not in value:
        return None
    ns, _, name = value.partition("_")
    return ObjKey(ns, name)


def index_owned(informers: DeploymentInformers) -> None:
    """Index each child cache by owner label value, so a DPUDeployment finds its children without a scan."""
    for _, informer in informers.children():
        informer.add_index(OWNER_INDEX, lambda o: [v] if (v := labels_of(o).get(OWNER_LABEL)) else [])


class DpuDeploymentWork(ObjectWork):
    def __init__(self, client: KubeClient, informers: DeploymentInformers, *, workers: int = 2) -> None:
        self.client = client
        self.i = informers
        self.deps = informers.dependencies()
        super().__init__(KIND, workers)
        self.status_patches = 0
        self.writes = 0  # child creations, patches and deletions (tests and metrics)
        index_owned(informers)

    # -- inputs -------------------------------------------------------------------------------------
    def owned(self, dd: ObjKey, informer: Informer) -> list[Obj]:
        return informer.by_index(OWNER_INDEX, owner_value(dd))

    # -- reconcile ----------------------------------------------------------------------------------
    async def reconcile(self, key: ObjKey) -> Result:
        obj = self.i.deployments.get(key.namespace, key.name)
        if obj is None:
            # Gone (after its finalizer, or forced without it): nothing of it may hold what it consumed.
            await self._mark_dependencies(key, [], leaving=True)
            return DONE
        if is_deleting(obj):
            return await self._finish_deletion(obj, key)
        if FINALIZER not in finalizers_of(obj):
            patch = finalizer_patch(obj, [*finalizers_of(obj), FINALIZER])
            obj = await self.client.patch(DPUDEPLOYMENTS, key.namespace, key.name, patch)
        conds = Conditions(generation_of(obj))
        try:
            dd = DPUDeployment.model_validate(obj)
            deps = gather(dd, key.namespace, self.deps)
        except (ValidationError, MissingDependency) as exc:
            problem = f"invalid spec: {exc}" if isinstance(exc, ValidationError) else str(exc)
            conds.false(COND_PREREQS, REASON_PENDING, f"Error occurred: {problem}")
            await self._write_status(obj, key, conds)
            return DONE  # the dependency's arrival enqueues this object again
        await self._mark_dependencies(key, deps.objects)
        conds.true(COND_PREREQS)
        flavor = deps.flavor.get("spec") or {}
        missing = missing_resources(
            flavor.get("dpuResources"),
            flavor.get("systemReservedResources"),
            [t.spec.resourceRequirements or {} for t in deps.templates.values()],
        )
        if missing:
            # DPF's Failure: flavors and templates are immutable, the user must point the DPUDeployment elsewhere.
            conds.false(COND_FITTING, REASON_FAILURE, f"Error occurred: {fitting_problem(missing)}")
            await self._write_status(obj, key, conds)
            return DONE
        conds.true(COND_FITTING)
        desired = generate(obj, deps.templates, deps.configurations)
        failed = await self._write_children(key, desired, conds)
        self._children_ready(key, conds)
        await self._write_status(obj, key, conds)
        return Result(requeue=True) if failed else DONE

    async def _write_children(self, key: ObjKey, desired: Desired, conds: Conditions) -> bool:
        """Apply each kind's desired objects and delete the ones no longer generated; True if a write failed."""
        informers = dict((rt.kind, inf) for rt, inf in self.i.children())
        for rt, objs in desired.by_kind():
            informer, (reconciled, _) = informers[rt.kind], CHILD_CONDITIONS[rt.kind]
            try:
                for want in objs:
                    if await apply(self.client, rt, informer.get(key.namespace, name_of(want)), want):
                        self.writes += 1
                wanted = {name_of(o) for o in objs}
                for stale in self.owned(key, informer):
                    if name_of(stale) not in wanted and not is_deleting(stale):
                        await self._delete(rt, stale)
            except ApiError as exc:
                log.warning("cannot write children", extra={"object": describe(KIND, key), "error": str(exc)})
                conds.false(reconciled, REASON_ERROR, f"Error occurred: {exc}")
                return True
            conds.true(reconciled)
        return False

    def _children_ready(self, key: ObjKey, conds: Conditions) -> None:
        for rt, informer in self.i.children():
            _, ready = CHILD_CONDITIONS[rt.kind]
            waiting = not_ready(rt.kind, self.owned(key, informer))
            if waiting:
                conds.false(ready, REASON_PENDING, f"Objects not ready: {','.join(waiting)}")
            else:
                conds.true(ready)

    async def _delete(self, rt: ResourceType, obj: Obj) -> None:
        k = key_of(obj)
        try:
            await self.client.delete(rt, k.namespace, k.name, uid=uid_of(obj))
            self.writes += 1
        except ApiError as exc:
            if not (exc.not_found or exc.conflict):  # gone already, or another incarnation: nothing of ours
                raise

    # -- what it consumes ---------------------------------------------------------------------------
    async def _mark_dependencies(
        self, key: ObjKey, objs: list[tuple[ResourceType, Obj]], *, leaving: bool = False
    ) -> None:
        """Label and finalizer on what `key` consumes now; off what it consumed before (or all, when leaving)."""
        deployments = [d for d in self.i.deployments.list() if not (leaving and key_of(d) == key)]
        current = {(rt.kind, key_of(o)) for rt, o in objs}
        before = [
            (rt, o) for rt, o in marked_for(key.name, key.namespace, self.deps) if (rt.kind, key_of(o)) not in current
        ]
        for rt, obj in [*objs, *before]:
            patch = mark_patch(obj, consumers(obj, rt, deployments))
            if patch is None:
                continue
            k = key_of(obj)
            try:
                await self.client.patch_no_result(rt, k.namespace, k.name, patch)
            except ApiError as exc:
                if not exc.not_found:
                    raise

    # -- deletion -----------------------------------------------------------------------------------
    async def _finish_deletion(self, obj: Obj, key: ObjKey) -> Result:
        if FINALIZER not in finalizers_of(obj):
            return DONE
        conds = Conditions(generation_of(obj))
        waiting = False
        for rt, informer in self.i.children():
            reconciled, _ = CHILD_CONDITIONS[rt.kind]
            if rt.kind == DPUSETS.kind and waiting:
                # The DPUSets stay until the services and chains on their DPUs are gone.
                remaining = self.owned(key, informer)
                conds.false(reconciled, REASON_AWAITING_DELETION,
                            f"There are still {len(remaining)} {rt.kind}s that are not completely deleted")  # fmt: skip
                continue
            children = self.owned(key, informer)
            for child in children:
                if not is_deleting(child):
                    await self._delete(rt, child)
            if children:
                waiting = True
                message = f"There are still {len(children)} {rt.kind}s that are not completely deleted"
            else:
                message = f"All {rt.kind}s are deleted"
            conds.false(reconciled, REASON_AWAITING_DELETION, message)
        await self._write_status(obj, key, conds)
        if waiting:
            return Result(requeue_after=DELETE_REQUEUE)  # the children's DELETED events come sooner
        await self._mark_dependencies(key, [], leaving=True)
        keep = [f for f in finalizers_of(obj) if f != FINALIZER]
        try:
            await self.client.patch_no_result(DPUDEPLOYMENTS, key.namespace, key.name, finalizer_patch(obj, keep))
        except ApiError as exc:
            if not exc.not_found:
                raise
        log.info("children deleted; finalizer removed", extra={"object": describe(KIND, key)})
        return DONE

    async def _write_status(self, obj: Obj, key: ObjKey, conds: Conditions) -> None:
        wanted = status_patch(obj, conds.complete(obj))
        if wanted is None:
            return
        if await self.client.patch_status(DPUDEPLOYMENTS, key.namespace, key.name, wanted):
            self.status_patches += 1

    # -- cache events -------------------------------------------------------------------------------
    def on_deployment(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event == "MODIFIED" and status_only_change(old, obj):
            return  # our own status write
        key = key_of(obj)
        self.queue.add(key)
        if event == "DELETED" or (old is not None and old.get("spec") != obj.get("spec")):
            for rt, dep in marked_for(key.name, key.namespace, self.deps):
                for k in deployment_keys_using(dep, rt, self.i.deployments.list()):
                    self.queue.add(k)  # a dependency it dropped may be another's to mark

    def on_child(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        """A generated object changed (its status says Ready, or someone edited or deleted it)."""
        owner = _owner_of(obj)
        if owner is not None:
            self.queue.add(owner)
        if old is not None and (before := _owner_of(old)) is not None and before != owner:
            self.queue.add(before)

    def on_dependency(self, rt: ResourceType) -> Handler:
        """The handler for one dependency kind (list items carry no kind): a BFB, DPUFlavor, DPUServiceTemplate
        or DPUServiceConfiguration came, changed or went."""

        def handle(event: EventType, obj: Obj, old: Obj | None) -> None:
            for k in deployment_keys_using(obj, rt, self.i.deployments.list()):
                self.queue.add(k)

        return handle

    def handlers(self) -> list[tuple[Informer, Handler]]:
        """Which cache feeds which handler (what the manager forwards while this term leads)."""
        out: list[tuple[Informer, Handler]] = [(self.i.deployments, self.on_deployment)]
        out += [(inf, self.on_child) for _, inf in self.i.children()]
        out += [(inf, self.on_dependency(rt)) for rt, inf in self.deps.pairs()]
        return out

    def enqueue_all(self) -> None:
        for key in self.i.deployments.list_keys():
            self.queue.add(key)
