"""Kind ServiceChain on the DPU: the chain's switches as flows on br-sfc (DPF's servicechain controller).

Each port's serviceInterface selector is resolved to an ofport by the lookup the reconciler is given (ports are
another reconciler's work). While a port is missing, the chain's current flows stay as they are, the report says
which port is missing, and the chain is retried every `retry` seconds, as DPF requeues. Deleting the chain (or
its intent) deletes its cookie's flows. A reconcile hands the chain to the bridge's bundle applier and waits for
that bundle outside the agent's concurrency slot; the report is Ready once the bundle is applied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Final

from pydantic import ValidationError

from dpfd.agent.keyed_runner import outside_slot
from dpfd.agent.reconciler import AgentLink, Kick
from dpfd.api.conditions import Condition
from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.dpu.flows.applier import BridgeFlows
from dpfd.dpu.flows.model import Labels, PortUnresolved, chain_cookie, chain_texts, spec_selectors
from dpfd.dpu.flows.ofctl import Ofctl

KIND: Final = "ServiceChain"
COND_READY: Final = "Ready"
PHASE_READY: Final = "Ready"
PHASE_PENDING: Final = "Pending"
PHASE_FAILED: Final = "Failed"
PHASE_DELETING: Final = "Deleting"

# (chain namespace, a port's serviceInterface.matchLabels) -> the ofport of the one ServiceInterface they select on
# this node; raises PortUnresolved (with what is missing) when there is none yet.
OfportLookup = Callable[[str, Labels], Awaitable[int]]


class ServiceChainReconciler:
    kind = KIND

    def __init__(
        self,
        node: str,
        lookup: OfportLookup,
        target: str,
        argv: Sequence[str] = ("ovs-ofctl",),
        *,
        env: dict[str, str] | None = None,
        retry: float = 2.0,
    ) -> None:
        self.node = node
        self.lookup = lookup
        self.flows = BridgeFlows(Ofctl(target=target, argv=tuple(argv), env=env))
        self.retry = retry
        self._refs: set[ObjectRef] = set()
        self._kick: Kick = lambda ref, delay: None
        self.link: AgentLink | None = None

    def bind(self, link: AgentLink) -> None:
        self._kick = link.kick
        self.link = link

    async def close(self) -> None:
        return None

    def local_refs(self) -> Iterable[ObjectRef]:
        return set(self._refs)

    async def collect(self) -> list[int]:
        """Delete the flows of every cookie on the bridge that is not a chain this reconciler holds."""
        return await self.flows.collect(chain_cookie(r.namespace, r.name) for r in self._refs)

    async def reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None:
        cookie = chain_cookie(ref.namespace, ref.name)
        if intent is None or intent.deleting:
            await self.flows.delete(cookie)
            self._refs.discard(ref)
            if intent is None:
                return None
            return self._report(intent, PHASE_DELETING, "False", "Deleting", "flows deleted")
        try:
            selectors = spec_selectors(intent.spec)
        except ValidationError as e:
            return self._report(intent, PHASE_FAILED, "False", "InvalidSpec", str(e))
        try:
            switches = [[await self.lookup(ref.namespace, sel) for sel in switch] for switch in selectors]
        except PortUnresolved as e:
            self._kick(ref, self.retry)
            return self._report(intent, PHASE_PENDING, "False", "PortsNotReady", str(e))
        flows = chain_texts(cookie, switches)
        applied = self.flows.submit_texts(cookie, flows)
        if applied is not None:
            # Wait for the bundle holding the chain without the agent's concurrency slot: other chains reconcile
            # meanwhile and join the same bundle.
            await outside_slot(applied)
        self._refs.add(ref)
        details: dict[str, Any] = {"cookie": f"{cookie:#x}", "flows": len(flows), "ofports": switches}
        return self._report(intent, PHASE_READY, "True", "FlowsApplied", f"{len(flows)} flows", details)

    def _report(
        self,
        intent: Intent,
        phase: str,
        status: Any,
        reason: str,
        message: str,
        details: dict[str, Any] | None = None,
    ) -> Report:
        cond = Condition(
            type=COND_READY, status=status, reason=reason, message=message, observedGeneration=intent.generation
        )
        return Report(node=self.node, ref=intent.ref, uid=intent.uid, observedGeneration=intent.generation,
                      phase=phase, conditions=[cond], details=details or {})  # fmt: skip
