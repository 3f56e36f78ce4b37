"""Host role: what an operator asks of this dpfd's provisioning — retry or reflash a DPU, drain or undrain the host.

Each request is written durably (dpfd.host.provisioning.requests) before it is acknowledged, then the DPUs concerned
are reconciled at once; the phase machine honours it under the DPU's lock. So an acknowledged request survives a
restart of dpfd, and is carried out by whichever process owns the DPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dpfd.admin.dpus import DpuDirectory, DpuInfo
from dpfd.admin.errors import Precondition
from dpfd.admin.events import AdminEvent, EventHub
from dpfd.admin.status import DrainStatus
from dpfd.api.intents import ObjectRef
from dpfd.host.provisioning.requests import Action, OperatorRequests

Kick = Callable[[ObjectRef], None]


@dataclass(frozen=True)
class ActionResult:
    dpu: DpuInfo
    action: Action
    request_id: str
    message: str


class HostOperations:
    def __init__(self, node: str, directory: DpuDirectory, requests: OperatorRequests, kick: Kick,
                 events: EventHub | None = None) -> None:  # fmt: skip
        """``kick(ref)``: reconcile that DPU now (a no-op before the agent runs: it reconciles every DPU as it
        starts, and reads the requests then)."""
        self.node = node
        self.directory = directory
        self.requests = requests
        self.kick = kick
        self.events = events

    def retry(self, name: str, namespace: str = "") -> ActionResult:
        dpu = self._actionable(name, namespace, "retry")
        if not dpu.failing:
            raise Precondition(f"DPU {dpu.name} has no failure to retry (phase {dpu.phase or 'unknown'})")
        request_id = self.requests.request(dpu.ref, "retry")
        self.kick(dpu.ref)
        step = dpu.error.phase if dpu.error is not None else dpu.phase
        return self._done(dpu, "retry", request_id, f"DPU {dpu.name}: retrying {step} now")

    def reflash(self, name: str, namespace: str = "") -> ActionResult:
        dpu = self._actionable(name, namespace, "reflash")
        request_id = self.requests.request(dpu.ref, "reflash")
        self.kick(dpu.ref)
        message = f"DPU {dpu.name}: flashing again from the start"
        if self.requests.drain_state() is not None:
            message += f" once host {self.node} is undrained"
        return self._done(dpu, "reflash", request_id, message)

    def drain(self, reason: str = "") -> DrainStatus:
        first = self.requests.drain_state() is None
        self.requests.drain(reason)
        self._kick_all()  # each DPU that is between steps holds now; the others when their step ends
        info = self.drain_status()
        if first:
            self._publish(AdminEvent(type="drain", message=f"host {self.node} drained" + (f": {reason}" if reason else ""),
                                     fields={"draining": "true"}))  # fmt: skip
        return info

    def undrain(self) -> DrainStatus:
        if self.requests.undrain():
            self._kick_all()
            self._publish(AdminEvent(type="drain", message=f"host {self.node} undrained", fields={"draining": "false"}))
        return self.drain_status()

    def drain_status(self) -> DrainStatus:
        state = self.requests.drain_state()
        if state is None:
            return DrainStatus(draining=False)
        in_flight = sum(d.in_flight for d in self.directory.list())
        return DrainStatus(True, state.since, state.reason, in_flight)

    def _actionable(self, name: str, namespace: str, action: str) -> DpuInfo:
        dpu = self.directory.find(name, namespace)
        if not dpu.has_intent:
            raise Precondition(f"DPU {dpu.name} is being released (its intent is gone): nothing to {action}")
        if dpu.deleting:
            raise Precondition(f"DPU {dpu.name} is being deleted: nothing to {action}")
        return dpu

    def _done(self, dpu: DpuInfo, action: Action, request_id: str, message: str) -> ActionResult:
        self._publish(AdminEvent(type="request", kind=dpu.ref.kind, namespace=dpu.namespace, name=dpu.name,
                                 phase=dpu.phase, message=message, fields={"action": action, "request": request_id}))  # fmt: skip
        return ActionResult(dpu, action, request_id, message)

    def _kick_all(self) -> None:
        for dpu in self.directory.list():
            if dpu.has_intent:
                self.kick(dpu.ref)

    def _publish(self, event: AdminEvent) -> None:
        if self.events is not None:
            self.events.publish(event)
