"""Applying and reverting DPUs' node effects on their host Nodes, as their hosts' dpfd ask in their reports.

A host's DPU report carries `details.nodeEffect {request: apply|revert|none, effect}`. This worker runs its own
work queue keyed by DPU (a drain takes minutes and must not hold up other DPUs' intents): an apply runs one
NodeEffectApplier pass and comes back after the pass's `retry_after` until the effect is done; the answer
`{applied, message}` goes into the DPU intent's context. The effect is reverted when the host asks, at Ready,
Error and deletion, and when the DPU is gone. Owners are recorded on the Node (see controller/nodeeffect), so
DPUs sharing a host share the effect and a restarted controller finds what it still has to revert.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller.kube.informer import Informer
from controller.kube.objects import Obj, ObjKey, describe, is_deleting, name_of, namespace_of, uid_of
from controller.kube.resources import DPUS
from controller.nodeeffect import InvalidNodeEffect, NodeEffectApplier, NodeEffectError
from controller.nodeeffect.holds import CorruptHolds, load_holds
from controller.queue import DONE, Result, WorkQueue, run_workers
from controller.reconcilers.dpu_context import Answers
from controller.reconcilers.dpu_intent import dpu_ref
from controller.reports import ReportCache
from dpfd.api.intents import Report

log = logging.getLogger(__name__)

NO_EFFECT: dict[str, Any] = {"noEffect": True}
DEFAULT_EFFECT: dict[str, Any] = {"drain": {"automaticNodeReboot": True}}  # DPF's CRD default
REVERT_PHASES = frozenset({"Ready", "Error", "Deleting"})
REVERTED = "node effect reverted"
TIMED_OUT_RECHECK = 30.0  # seconds between passes once a drain has timed out (pods may still go)


def owner_of(key: ObjKey) -> str:
    """How the Node annotation names a DPU."""
    return f"{key.namespace}/{key.name}"


@dataclass(frozen=True)
class Action:
    kind: str  # "apply" or "revert"
    effect: dict[str, Any]


def decide(dpu: Obj, report: Report | None) -> Action | None:
    """What the DPU's node effect needs now: apply (what the host asked), revert, or nothing (None)."""
    spec_effect = (dpu.get("spec") or {}).get("nodeEffect") or DEFAULT_EFFECT
    if is_deleting(dpu):
        return Action("revert", spec_effect)
    if report is None or report.uid != uid_of(dpu):
        return None  # the host has not asked anything of this incarnation
    if report.phase in REVERT_PHASES:
        return Action("revert", spec_effect)
    asked = report.details.get("nodeEffect") or {}
    request = asked.get("request")
    effect = asked.get("effect") or spec_effect
    if request == "apply":
        return Action("apply", effect)
    if request in ("revert", "none"):
        return Action("revert", effect if request == "revert" else spec_effect)
    return None


def holds_owner(node: Obj | None, owner: str) -> bool:
    """The cached Node records `owner` among its node-effect holders (an unreadable record counts as yes, so the
    applier reports the problem)."""
    if node is None:
        return False
    try:
        return any(owner in h.owners for h in load_holds(node).values())
    except CorruptHolds:
        return True


def owners_on(node: Obj) -> set[str]:
    try:
        return {o for h in load_holds(node).values() for o in h.owners}
    except CorruptHolds:
        return set()


class NodeEffectWorker:
    """One leadership term's node-effect work."""

    def __init__(
        self,
        applier: NodeEffectApplier,
        nodes: Informer,
        dpus: Informer,
        reports: ReportCache,
        answers: Answers,
        on_answer: Callable[[ObjKey], None],
        *,
        workers: int = 4,
    ) -> None:
        self.applier = applier
        self.nodes = nodes
        self.dpus = dpus
        self.reports = reports
        self.answers = answers
        self.on_answer = on_answer
        self.workers = workers
        self.queue: WorkQueue[ObjKey] = WorkQueue("nodeeffect")
        self._orphans: dict[ObjKey, str] = {}  # DPUs gone from the cache whose holds a Node still records -> node
        self._next_pass: dict[ObjKey, float] = {}  # a drain in progress: no pass before this (monotonic) time

    def enqueue(self, key: ObjKey) -> None:
        self.queue.add(key)

    def enqueue_all(self) -> None:
        for key in self.dpus.list_keys():
            self.queue.add(key)
        self.sweep_nodes()

    def sweep_nodes(self) -> None:
        """Queue owners recorded on Nodes whose DPU no longer exists (deleted while nobody led)."""
        for node in self.nodes.list():
            for owner in owners_on(node):
                ns, _, name = owner.partition("/")
                key = ObjKey(ns, name)
                if self.dpus.get(ns, name) is None:
                    self._orphans[key] = name_of(node)
                    self.queue.add(key)

    def dpu_gone(self, dpu: Obj) -> None:
        node = str((dpu.get("spec") or {}).get("nodeName") or "")
        key = ObjKey(namespace_of(dpu), name_of(dpu))
        if node:
            self._orphans[key] = node
        self.queue.add(key)

    async def run(self) -> None:
        try:
            await run_workers(self.queue, self.reconcile, self.workers, lambda k: describe(DPUS.kind, k))
        finally:
            self.queue.shut_down()

    def _answer(self, key: ObjKey, applied: bool, message: str) -> None:
        answer = {"applied": applied, "message": message}
        if self.answers.node_effect.get(key) != answer:
            self.answers.node_effect[key] = answer
            self.on_answer(key)

    async def reconcile(self, key: ObjKey) -> Result:
        owner = owner_of(key)
        dpu = self.dpus.get(key.namespace, key.name)
        if dpu is None:
            node = self._orphans.get(key)
            self.answers.node_effect.pop(key, None)
            if node:
                await self.applier.revert(node, NO_EFFECT, owner)
                log.info(
                    "node effect of a deleted DPU reverted", extra={"object": describe(DPUS.kind, key), "node": node}
                )
            self._orphans.pop(key, None)
            self._next_pass.pop(key, None)
            return DONE
        self._orphans.pop(key, None)
        node = str((dpu.get("spec") or {}).get("nodeName") or "")
        if not node:
            return DONE
        action = decide(dpu, self.reports.latest(node, dpu_ref(key.namespace, key.name)))
        if action is None:
            return DONE
        if action.kind == "revert":
            return await self._revert(key, node, owner, action.effect)
        return await self._apply(key, node, owner, action.effect)

    async def _revert(self, key: ObjKey, node: str, owner: str, effect: dict[str, Any]) -> Result:
        self._next_pass.pop(key, None)
        if holds_owner(self.nodes.get("", node), owner):
            try:
                await self.applier.revert(node, effect, owner)
            except InvalidNodeEffect:
                await self.applier.revert(node, NO_EFFECT, owner)  # let go of everything all the same
            log.info("node effect reverted", extra={"object": describe(DPUS.kind, key), "node": node})
        if key in self.answers.node_effect:
            self._answer(key, False, REVERTED)
        return DONE

    async def _apply(self, key: ObjKey, node: str, owner: str, effect: dict[str, Any]) -> Result:
        what = describe(DPUS.kind, key)
        answered = self.answers.node_effect.get(key) or {}
        if answered.get("applied") and holds_owner(self.nodes.get("", node), owner):
            return DONE  # reports come often while flashing; the effect is in place (the Node says so)
        wait = self._next_pass.get(key, 0.0) - time.monotonic()
        if wait > 0:
            return Result(requeue_after=wait)  # a report arrived mid-drain: keep the passes' pace
        try:
            state = await self.applier.apply(node, effect, owner)
        except InvalidNodeEffect as e:
            self._answer(key, False, f"invalid node effect: {e}")
            return DONE  # a spec change enqueues the DPU again
        except NodeEffectError as e:
            self._answer(key, False, str(e))
            raise
        self._answer(key, state.done, f"Node {node}: {state.message}")
        if state.done:
            self._next_pass.pop(key, None)
            log.info("node effect applied", extra={"object": what, "node": node, "phase": state.phase.value})
            return DONE
        after = state.retry_after if state.retry_after > 0 else TIMED_OUT_RECHECK
        self._next_pass[key] = time.monotonic() + after
        return Result(requeue_after=after)
