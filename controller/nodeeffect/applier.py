"""NodeEffectApplier: applies and reverts a DPU's node effect on its host Node through the Kubernetes API.

The host dpfd requests the effect (in its report); the controller calls `apply` until the state is done, then
provisioning goes on; at Ready, Error and deletion it calls `revert`. Both are idempotent and level-triggered:
each call reads the Node, converges it, and (for a drain) runs one eviction pass, so a restarted controller
continues where the last one stopped. Who holds what lives in a Node annotation (see holds.py), so DPUs sharing
a host share its effect and the last one out reverts it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from controller.kube.client import ApiError, KubeClient
from controller.kube.resources import NODES
from controller.nodeeffect.drain import Evictor
from controller.nodeeffect.holds import CorruptHolds, Holds, NodeView, converge, load_holds, node_patch
from controller.nodeeffect.spec import CORDON, Want, parse_effect

log = logging.getLogger(__name__)


class NodeEffectError(Exception):
    """The effect cannot be applied or reverted on this Node (missing Node, unreadable record, endless conflicts)."""


class EffectPhase(StrEnum):
    APPLIED = "Applied"  # noEffect, taint and customLabel: in place
    DRAINING = "Draining"  # cordoned; pods still to go
    DRAINED = "Drained"
    DRAIN_TIMED_OUT = "DrainTimedOut"  # pods still there after drain_timeout: the caller decides (error, force)


@dataclass(frozen=True)
class EffectState:
    """Where an effect stands. For a drain: pods still on the node (namespace/name), the PodDisruptionBudgets
    holding some of them (namespace/name), other problems, and when to call `apply` again."""

    phase: EffectPhase
    remaining_pods: tuple[str, ...] = ()
    blocked_by: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    retry_after: float = 0.0

    @property
    def done(self) -> bool:
        return self.phase in (EffectPhase.APPLIED, EffectPhase.DRAINED)

    @property
    def message(self) -> str:
        """One line for a condition or an event."""
        if self.done:
            return f"node effect {self.phase.value.lower()}"
        parts = [f"{len(self.remaining_pods)} pod(s) left to evict"]
        if self.blocked_by:
            parts.append("blocked by PodDisruptionBudget " + ", ".join(self.blocked_by))
        parts.extend(self.problems)
        prefix = "drain timed out" if self.phase is EffectPhase.DRAIN_TIMED_OUT else "draining"
        return f"{prefix}: " + "; ".join(parts)


@dataclass(frozen=True)
class NodeEffectOptions:
    drain_timeout: float = 600.0  # seconds from an owner's first drain request to DrainTimedOut
    grace_period_seconds: int | None = None  # passed to evictions; None: each pod's own
    conflict_retries: int = 10  # fresh reads after 409 Conflict before giving up
    backoff_initial: float = 1.0  # retry_after once pods are blocked; doubles per pass without progress
    backoff_max: float = 30.0


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class NodeEffectApplier:
    """Applies node effects for owners (a DPU's `namespace/name`) through `client`; `clock` is wall time."""

    def __init__(
        self,
        client: KubeClient,
        options: NodeEffectOptions | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.options = options or NodeEffectOptions()
        self._clock = clock
        self._evictor = Evictor(client, self.options.grace_period_seconds)
        self._stalled: dict[tuple[str, str], int] = {}  # (node, owner) -> drain passes in a row without progress

    async def apply(self, node: str, effect: dict[str, Any], owner: str) -> EffectState:
        """Converge the Node to `effect` for `owner` (releasing what it held for an earlier effect) and, for a
        drain, run one eviction pass. Raises InvalidNodeEffect (a ValueError) or NodeEffectError."""
        parsed = parse_effect(effect)
        holds = await self._converge(node, owner, parsed.wants)
        if not parsed.drains:
            return EffectState(EffectPhase.APPLIED)
        progress = await self._evictor.drain_pass(node)
        key = (node, owner)
        if progress.drained:
            self._stalled.pop(key, None)
            return EffectState(EffectPhase.DRAINED)
        stalled = 0 if progress.evicted else self._stalled.get(key, 0) + 1
        self._stalled[key] = stalled
        opts = self.options
        retry_after = min(opts.backoff_max, opts.backoff_initial * 2**stalled)
        since = _seconds(holds[CORDON].owners[owner])
        timed_out = self._clock() - since >= opts.drain_timeout
        phase = EffectPhase.DRAIN_TIMED_OUT if timed_out else EffectPhase.DRAINING
        state = EffectState(phase, progress.remaining, progress.blocked_by, progress.problems, retry_after)
        log.info("Node %s for %s: %s", node, owner, state.message)
        return state

    async def apply_until_done(self, node: str, effect: dict[str, Any], owner: str) -> EffectState:
        """`apply` again after each state's retry_after until the effect is done or the drain timed out."""
        while True:
            state = await self.apply(node, effect, owner)
            if state.phase is not EffectPhase.DRAINING:
                return state
            await asyncio.sleep(state.retry_after)

    async def revert(self, node: str, effect: dict[str, Any], owner: str) -> None:
        """Let go of everything `owner` holds on the Node; what no owner holds any more and we changed is undone
        (uncordon, taint and labels removed or restored). `effect` is checked but not needed: a DPU whose effect
        was edited since `apply` still lets go of all it held. A missing Node has nothing to revert."""
        parse_effect(effect)
        self._stalled.pop((node, owner), None)
        await self._converge(node, owner, ())

    async def holders(self, node: str) -> dict[str, list[str]]:
        """Hold (`cordon`, `taint/<key>`, `label/<key>`) -> owners, as recorded on the Node."""
        obj = await self._client.get(NODES, "", node)
        try:
            return {k: sorted(h.owners) for k, h in load_holds(obj).items()}
        except CorruptHolds as e:
            raise NodeEffectError(str(e)) from e

    async def _converge(self, node: str, owner: str, wants: tuple[Want, ...]) -> Holds:
        """Read the Node, make `owner` hold exactly `wants`, write it back; a 409 means read again."""
        for _ in range(self.options.conflict_retries):
            try:
                obj = await self._client.get(NODES, "", node)
            except ApiError as e:
                if e.not_found and not wants:
                    return {}
                if e.not_found:
                    raise NodeEffectError(f"Node {node} not found: cannot apply the node effect of {owner}") from e
                raise
            try:
                holds = load_holds(obj)
            except CorruptHolds as e:
                raise NodeEffectError(str(e)) from e
            view = NodeView.of(obj)
            new = converge(view, holds, owner, wants, _rfc3339(self._clock()))
            patch = node_patch(obj, view, new)
            if patch is None:
                return new
            try:
                await self._client.patch_no_result(NODES, "", node, patch)
                return new
            except ApiError as e:
                if e.not_found and not wants:
                    return {}
                if not e.conflict:
                    raise
                log.debug("Node %s changed under us; reading it again", node)
        raise NodeEffectError(
            f"Node {node}: still conflicting after {self.options.conflict_retries} fresh reads; try again later"
        )
