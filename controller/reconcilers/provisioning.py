"""Provisioning reconcilers: DPUSet → DPU objects, and DPU → an intent for its host's dpfd.

Level-triggered and idempotent, in controller-runtime's `Reconcile(key)` model: each run reads the whole
desired state from the informer caches and converges. Kubernetes writes fan out with a shared bound on
the calls in flight; intents go through the IntentPublisher, which batches them into etcd transactions.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from controller.kube.client import ApiError, KubeClient
from controller.kube.events import EventRecorder
from controller.kube.informer import EventType, Informer
from controller.kube.objects import (
    Obj,
    ObjKey,
    describe,
    finalizer_patch,
    finalizers_of,
    is_deleting,
    key_of,
    labels_of,
    name_of,
    uid_of,
)
from controller.kube.resources import DPUS, DPUSETS, ResourceType
from controller.members import MembersCache
from controller.publish import IntentPublisher
from controller.queue import DONE, Result, WorkQueue, run_workers
from controller.reconcilers.dpu_context import ContextHooks
from controller.reconcilers.dpu_intent import dpu_intent, dpu_ref
from controller.reconcilers.dpuset_desired import (
    DPU_FINALIZER,
    DPUSET_FINALIZER,
    desired_dpu,
    desired_placements,
    dpu_statistics,
    dpuset_index_value,
    dpuset_of_dpu,
    node_labels_patch,
)
from controller.reconcilers.rollout import Replacements, RolloutPlan, available, plan_rollout
from controller.reports import ReportCache
from dpfd.api.defaults import apply_defaults
from dpfd.api.intents import ObjectRef, Report
from dpfd.api.validation import parse_object

log = logging.getLogger(__name__)

DPUSET_INDEX = "dpuset"  # DPUs by "<dpuset namespace>/<dpuset name>"
NODE_INDEX = "node"  # DPUs by spec.nodeName
EXPECTATION_TTL = 30.0
DPUSET_COALESCE = 0.5  # seconds: how long DPU changes may gather before their DPUSet is reconciled  # how long a created DPU may take to show up in the cache before we create it again


def index_dpus(dpus: Informer) -> None:
    """Register the DPU cache indexes the reconcilers use."""
    dpus.add_index(DPUSET_INDEX, lambda o: [v] if (v := dpuset_of_dpu(o)) else [])
    dpus.add_index(NODE_INDEX, lambda o: [n] if (n := str((o.get("spec") or {}).get("nodeName") or "")) else [])


@dataclass
class ProvisioningDeps:
    client: KubeClient
    nodes: Informer
    dpusets: Informer
    dpus: Informer
    publisher: IntentPublisher
    reports: ReportCache
    members: MembersCache
    events: EventRecorder | None = None
    api_concurrency: int = 32
    context: ContextHooks | None = None  # the intents' context and cluster assignment (context_work.py)


def released(report: Report | None, dpu: Obj) -> bool:
    """The host's dpfd has let go of the DPU: phase Deleting with details.released, for this incarnation."""
    return (
        report is not None
        and report.uid == uid_of(dpu)
        and report.phase == "Deleting"
        and report.details.get("released") is True
    )


# Metadata every write changes; a change of only these (and status) leaves a DPU's intent as it was.
_WRITE_BOOKKEEPING = frozenset({"resourceVersion", "managedFields"})


def status_only_change(old: Obj | None, new: Obj) -> bool:
    """Only the status changed (as when the controller writes a report into it): nothing the intent is made of."""
    if old is None or old.get("spec") != new.get("spec"):
        return False
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    return all(
        old_meta.get(k) == new_meta.get(k) for k in old_meta.keys() | new_meta.keys() if k not in _WRITE_BOOKKEEPING
    )


def node_selection_changed(old: Obj, new: Obj) -> bool:
    """Only label and address changes matter to DPUSets (DPF watches Nodes with a label-changed predicate;
    the InternalIP feeds the dpu-host-ip label). Heartbeat status updates do not."""
    return labels_of(old) != labels_of(new) or (old.get("status") or {}).get("addresses") != (
        new.get("status") or {}
    ).get("addresses")


class _Fanout:
    """Run many API calls with a bound on how many are in flight; collect the failures (in call order)."""

    def __init__(self, slots: asyncio.Semaphore, width: int) -> None:
        self.slots = slots  # shared by every fan-out: the bound on calls in flight
        self.width = max(1, width)

    async def run(self, calls: list[Callable[[], Awaitable[None]]]) -> list[BaseException]:
        # A few runners take the calls in turn: a task per call would cost more than many of the calls.
        failed: list[tuple[int, BaseException]] = []
        pending = iter(enumerate(calls))

        async def runner() -> None:
            for i, call in pending:
                async with self.slots:
                    try:
                        await call()
                    except asyncio.CancelledError:
                        raise
                    except BaseException as exc:  # every failure is reported to the caller
                        failed.append((i, exc))

        results = await asyncio.gather(*(runner() for _ in range(min(self.width, len(calls)))), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):  # a runner was cancelled
                raise r
        return [exc for _, exc in sorted(failed, key=lambda f: f[0])]


class DPUSetReconciler:
    """Creates, deletes and patches a DPUSet's DPUs and keeps its status.dpuStatistics."""

    def __init__(self, deps: ProvisioningDeps, slots: asyncio.Semaphore) -> None:
        self.d = deps
        self.fanout = _Fanout(slots, deps.api_concurrency)
        self.queue: WorkQueue[ObjKey] = WorkQueue("dpuset")
        # DPUs written (created, deleted, patched) whose change the cache has not shown yet: acting on them
        # again from the stale cache would only repeat the write. Cleared by the next event for the DPU.
        self._awaiting: dict[ObjKey, float] = {}
        self.replacements = Replacements(EXPECTATION_TTL)  # DPUs deleted by rollouts, until the cache shows it

    def observed_dpu(self, key: ObjKey) -> None:
        self._awaiting.pop(key, None)

    async def reconcile(self, key: ObjKey) -> Result:
        dpuset = self.d.dpusets.get(key.namespace, key.name)
        if dpuset is None:
            return DONE
        what = describe(DPUSETS.kind, key)
        if is_deleting(dpuset):
            # Its DPUs go with it through their ownerReferences (Kubernetes garbage collection).
            if DPUSET_FINALIZER in finalizers_of(dpuset):
                keep = [f for f in finalizers_of(dpuset) if f != DPUSET_FINALIZER]
                await self._patch_ignoring_gone(DPUSETS, key, finalizer_patch(dpuset, keep))
                log.info("finalizer removed", extra={"object": what})
            return DONE
        if DPUSET_FINALIZER not in finalizers_of(dpuset):
            dpuset = await self.d.client.patch(
                DPUSETS,
                key.namespace,
                key.name,
                finalizer_patch(dpuset, [*finalizers_of(dpuset), DPUSET_FINALIZER]),
            )

        try:
            parse_object(dpuset)  # the typed model: refuses what DPF's webhooks and CRD schema would
        except ValueError as exc:
            log.warning("DPUSet is invalid; leaving its DPUs alone", extra={"object": what, "error": str(exc)})
            if self.d.events is not None:
                self.d.events.record(dpuset, DPUSETS.kind, DPUSETS.api_version, "Warning", "InvalidSpec", str(exc))
            return DONE  # a spec change enqueues it again
        dpuset = apply_defaults(dpuset)  # what DPF's webhook and CRD defaults make of it

        problems: list[str] = []
        wanted = desired_placements(dpuset, self.d.nodes.list(), problems)
        existing = {name_of(o): o for o in self.d.dpus.by_index(DPUSET_INDEX, dpuset_index_value(*key))}
        now = time.monotonic()

        def ready(name: str) -> bool:
            return not self._awaiting_cache(ObjKey(key.namespace, name), now)

        # Only DPUs to create are built in full; the rest is compared by name.
        creates = [
            desired_dpu(dpuset, p.node, p.index)
            for name, p in sorted(wanted.items())
            if name not in existing and ready(name)
        ]
        deletes = [o for name, o in existing.items() if name not in wanted and not is_deleting(o) and ready(name)]
        patches = [
            (o, p)
            for name, o in existing.items()
            if name in wanted and not is_deleting(o) and ready(name) and (p := node_labels_patch(dpuset, o))
        ]
        # Rollouts: outdated DPUs (BFB or flavor changed) are deleted, within the maxUnavailable budget for
        # RollingUpdate; they are recreated from the template once gone. Re-run as DPUs change phase.
        settling = {n for n in existing if not ready(n)} | self.replacements.unsettled(key, existing, now)
        rollout = plan_rollout(dpuset, existing, wanted.keys(), settling)
        for o in rollout.replace:
            self.replacements.expect(key, o, now)
        if rollout.replace:
            self._record_rollout(dpuset, rollout)

        calls: list[Callable[[], Awaitable[None]]] = []
        calls += [self._create_call(o) for o in creates]
        calls += [self._delete_call(o) for o in deletes]
        calls += [self._patch_call(o, p) for o, p in patches]
        calls += [self._delete_call(o) for o in rollout.replace]
        errors = await self.fanout.run(calls) if calls else []

        self._record(dpuset, creates, deletes, patches, problems, errors)
        await self._update_statistics(dpuset, key)
        if errors:
            raise RuntimeError(f"{what}: {len(errors)} of {len(calls)} DPU changes failed; first: {errors[0]}")
        return DONE

    def _record_rollout(self, dpuset: Obj, plan: RolloutPlan) -> None:
        how = "Recreate: all at once" if plan.budget is None else f"RollingUpdate: maxUnavailable {plan.budget}"
        shown = ", ".join(name_of(o) for o in plan.replace[:10]) + (" ..." if len(plan.replace) > 10 else "")
        log.info(
            "rollout: deleting outdated DPUs",
            extra={"object": describe(DPUSETS.kind, dpuset), "dpus_replaced": len(plan.replace),
                   "dpus_waiting": plan.waiting, "dpus_unavailable": plan.unavailable},
        )  # fmt: skip
        if self.d.events is not None:
            message = (
                f"Deleting {len(plan.replace)} outdated DPU(s) to recreate them from the template ({how}; "
                f"{plan.waiting} more waiting): {shown}"
            )
            self.d.events.record(dpuset, DPUSETS.kind, DPUSETS.api_version, "Normal", "SuccessfulDelete", message)

    def _awaiting_cache(self, key: ObjKey, now: float) -> bool:
        deadline = self._awaiting.get(key)
        return deadline is not None and deadline > now

    async def _write(self, key: ObjKey, write: Awaitable[object]) -> None:
        # Expect the change before asking, so the watch event can never arrive ahead of the expectation.
        self._awaiting[key] = time.monotonic() + EXPECTATION_TTL
        try:
            await write
        except BaseException:
            self._awaiting.pop(key, None)
            raise

    def _create_call(self, dpu: Obj) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            try:
                await self._write(key_of(dpu), self.d.client.create(DPUS, dpu))
            except ApiError as exc:
                if not exc.already_exists:
                    raise

        return call

    def _delete_call(self, dpu: Obj) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            try:
                await self._write(
                    key_of(dpu), self.d.client.delete(DPUS, key_of(dpu).namespace, name_of(dpu), uid=uid_of(dpu))
                )
            except ApiError as exc:
                if not (exc.not_found or exc.conflict):  # gone already, or another incarnation now
                    raise

        return call

    def _patch_call(self, dpu: Obj, patch: Obj) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            await self._write(key_of(dpu), self._patch_ignoring_gone(DPUS, key_of(dpu), patch))

        return call

    async def _patch_ignoring_gone(self, rt: ResourceType, key: ObjKey, patch: Obj) -> None:
        try:
            await self.d.client.patch_no_result(rt, key.namespace, key.name, patch)
        except ApiError as exc:
            if not exc.not_found:
                raise

    async def _update_statistics(self, dpuset: Obj, key: ObjKey) -> None:
        dpus = self.d.dpus.by_index(DPUSET_INDEX, dpuset_index_value(*key))
        stats = dpu_statistics(dpus)
        current: dict[str, int] = (dpuset.get("status") or {}).get("dpuStatistics") or {}
        if current == stats:
            return
        # A merge patch merges maps: phases that dropped to no DPUs must be removed explicitly.
        patch: dict[str, int | None] = {**{p: None for p in current if p not in stats}, **stats}
        await self._patch_status_ignoring_gone(key, {"status": {"dpuStatistics": patch}})

    async def _patch_status_ignoring_gone(self, key: ObjKey, patch: Obj) -> None:
        await self.d.client.patch_status(DPUSETS, key.namespace, key.name, patch["status"])

    def _record(
        self,
        dpuset: Obj,
        creates: list[Obj],
        deletes: list[Obj],
        patches: list[tuple[Obj, Obj]],
        problems: list[str],
        errors: list[BaseException],
    ) -> None:
        what = describe(DPUSETS.kind, dpuset)
        if creates or deletes or patches:
            log.info(
                "DPUs converged",
                extra={
                    "object": what,
                    "dpus_created": len(creates),
                    "dpus_deleted": len(deletes),
                    "dpus_patched": len(patches),
                    "dpus_failed": len(errors),
                },
            )
        for problem in problems:
            log.warning("cannot create DPU", extra={"object": what, "error": problem})
        ev = self.d.events
        if ev is None:
            return

        def names(objs: list[Obj]) -> str:
            shown = ", ".join(name_of(o) for o in objs[:10])
            return shown + (f" and {len(objs) - 10} more" if len(objs) > 10 else "")

        # One summary Event per action and reconcile, not one per DPU: 1,000 DPUs must not mean 1,000 Events.
        if creates:
            ev.record(
                dpuset,
                DPUSETS.kind,
                DPUSETS.api_version,
                "Normal",
                "SuccessfulCreate",
                f"Created {len(creates)} DPU(s): {names(creates)}",
            )
        if deletes:
            ev.record(
                dpuset,
                DPUSETS.kind,
                DPUSETS.api_version,
                "Normal",
                "SuccessfulDelete",
                f"Deleted {len(deletes)} DPU(s) whose node is no longer selected: {names(deletes)}",
            )
        for problem in problems[:10]:
            ev.record(dpuset, DPUSETS.kind, DPUSETS.api_version, "Warning", "FailedCreate", problem)
        if errors:
            ev.record(
                dpuset,
                DPUSETS.kind,
                DPUSETS.api_version,
                "Warning",
                "FailedSync",
                f"{len(errors)} DPU change(s) failed; first: {errors[0]}",
            )


class DPUReconciler:
    """Keeps each DPU's intent in etcd and finishes DPU deletion once the host has released it."""

    def __init__(self, deps: ProvisioningDeps) -> None:
        self.d = deps
        self.queue: WorkQueue[ObjKey] = WorkQueue("dpu")

    async def reconcile(self, key: ObjKey) -> Result:
        ref = dpu_ref(key.namespace, key.name)
        dpu = self.d.dpus.get(key.namespace, key.name)
        if dpu is None:
            self.d.publisher.declare(ref, [])  # the DPU is gone: so is its intent
            return DONE
        what = describe(DPUS.kind, key)
        try:
            intent = dpu_intent(dpu, self.d.context.context_of(dpu) if self.d.context is not None else None)
        except ValueError as exc:
            log.warning("DPU has no intent", extra={"object": what, "error": str(exc)})
            self.d.publisher.declare(ref, [])
            if is_deleting(dpu):
                await self._remove_finalizer(dpu, key, "no node to release it")
            return DONE
        self.d.publisher.declare(ref, [intent])
        if self.d.context is not None:
            await self.d.context.assign_cluster(dpu)
        if not is_deleting(dpu):
            if DPU_FINALIZER not in finalizers_of(dpu):
                await self.d.client.patch_no_result(
                    DPUS, key.namespace, key.name, finalizer_patch(dpu, [*finalizers_of(dpu), DPU_FINALIZER])
                )
            return DONE
        if DPU_FINALIZER not in finalizers_of(dpu):
            return DONE
        if released(self.d.reports.latest(intent.node, ref), dpu):
            await self._remove_finalizer(dpu, key, f"released by node {intent.node}")
        elif (
            self.d.members.synced.is_set()
            and not self.d.members.has(intent.node)
            and await self.d.members.confirmed_absent(intent.node)  # no host will ever release it
        ):
            await self._remove_finalizer(dpu, key, f"node {intent.node} has no dpfd")
        return DONE

    async def _remove_finalizer(self, dpu: Obj, key: ObjKey, why: str) -> None:
        if self.d.context is not None:
            await self.d.context.release(dpu)  # a failure leaves the finalizer: retried with the DPU
        keep = [f for f in finalizers_of(dpu) if f != DPU_FINALIZER]
        try:
            await self.d.client.patch_no_result(DPUS, key.namespace, key.name, finalizer_patch(dpu, keep))
        except ApiError as exc:
            if exc.not_found:
                return
            raise
        log.info("DPU deletion finished", extra={"object": describe(DPUS.kind, key), "reason": why})
        if self.d.events is not None:
            self.d.events.record(
                dpu,
                DPUS.kind,
                DPUS.api_version,
                "Normal",
                "Deleted",
                f"DPU released ({why}); finalizer removed",
            )


class ProvisioningReconcilers:
    """The DPUSet and DPU reconcilers of one leadership term, and the cache events that feed them."""

    def __init__(self, deps: ProvisioningDeps, *, workers: int = 8) -> None:
        self.d = deps
        self.workers = workers
        slots = asyncio.Semaphore(deps.api_concurrency)
        self.dpuset = DPUSetReconciler(deps, slots)
        self.dpu = DPUReconciler(deps)

    def busy(self) -> bool:
        """DPUSets or DPUs are waiting or being reconciled: intents are on their way."""
        return not (self.dpuset.queue.idle() and self.dpu.queue.idle())

    async def wait_idle(self) -> None:
        while self.busy():
            await self.dpuset.queue.wait_idle()
            await self.dpu.queue.wait_idle()

    # -- cache events (registered once; the manager forwards them to the current term) ---------------
    def on_node(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event == "MODIFIED" and old is not None and not node_selection_changed(old, obj):
            return
        for key in self.d.dpusets.list_keys():
            self.dpuset.queue.add(key)

    def on_dpuset(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        self.dpuset.queue.add(key_of(obj))

    def on_dpu(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        key = key_of(obj)
        self.dpuset.observed_dpu(key)
        if not (event == "MODIFIED" and status_only_change(old, obj)):
            self.dpu.queue.add(key)  # a DPU's intent is made of its spec and metadata, never of its status
        owner = dpuset_of_dpu(obj)
        if owner:
            ns, _, name = owner.partition("/")
            # A vanished DPU may need recreating now, and a DPU turning available (or not) may let a rollout move
            # on; other changes (mostly status, for dpuStatistics) are coalesced, so a thousand DPUs changing
            # phase cost a few DPUSet reconciles, not a thousand.
            if event == "DELETED" or old is None or available(old) != available(obj):
                self.dpuset.queue.add(ObjKey(ns, name))
            else:
                self.dpuset.queue.add_after(ObjKey(ns, name), DPUSET_COALESCE)

    def on_report(self, node: str, ref: ObjectRef, report: Report | None) -> None:
        if ref.kind != DPUS.kind:
            return
        dpu = self.d.dpus.get(ref.namespace, ref.name)
        if dpu is not None and is_deleting(dpu):
            self.dpu.queue.add(ObjKey(ref.namespace, ref.name))

    def on_member(self, node: str, present: bool) -> None:
        if present:
            return
        for dpu in self.d.dpus.by_index(NODE_INDEX, node):
            if is_deleting(dpu):
                self.dpu.queue.add(key_of(dpu))

    # -- run ------------------------------------------------------------------------------------------
    def enqueue_all(self) -> None:
        """Everything once at the start of a term, including DPUs that vanished while nobody led."""
        for key in self.d.dpusets.list_keys():
            self.dpuset.queue.add(key)
        for key in self.d.dpus.list_keys():
            self.dpu.queue.add(key)
        for ref in self.d.publisher.sources(DPUS.kind):
            self.dpu.queue.add(ObjKey(ref.namespace, ref.name))

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(
                    run_workers(
                        self.dpuset.queue,
                        self.dpuset.reconcile,
                        max(1, self.workers // 4),
                        lambda k: describe(DPUSETS.kind, k),
                    )
                )
                tg.create_task(
                    run_workers(self.dpu.queue, self.dpu.reconcile, self.workers, lambda k: describe(DPUS.kind, k))
                )
        finally:
            self.shut_down()

    def shut_down(self) -> None:
        self.dpuset.queue.shut_down()
        self.dpu.queue.shut_down()
