"""Whether a DPU's own dpfd and its host's dpfd are up, as the controller's gossip member sees them: two conditions
on the DPU object's status, `DPUDaemonReachable` and `HostDaemonReachable`.

Level-triggered: the status writer recomputes them from the view on every status write of a DPU (status.py), and
a membership change only enqueues the DPUs it concerns. The view remembers every dpfd it has seen in its last
state, also after the gossip engine forgets a dead member, so a DPU that stays down stays False. A DPU whose
daemon this replica has never seen (not installed yet, or a fresh leader that has not heard of it) keeps the
condition it has, or gets none."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydantic import ValidationError

from controller.kube.objects import Obj, name_of
from dpfd.api.conditions import Condition
from dpfd.gossip.agent import GossipAgent
from dpfd.gossip.meta import pci_slot
from dpfd.gossip.view import MemberChange, MemberInfo

log = logging.getLogger(__name__)

DPU_DAEMON_REACHABLE = "DPUDaemonReachable"
HOST_DAEMON_REACHABLE = "HostDaemonReachable"
CONDITION_TYPES = (DPU_DAEMON_REACHABLE, HOST_DAEMON_REACHABLE)

REASON_ALIVE = "MemberAlive"  # alive, or suspected but not yet declared dead
REASON_FAILED = "MemberFailed"  # declared dead by the failure detector
REASON_LEFT = "MemberLeft"  # left gracefully (stopped, rebooting)

NAME_INDEX = "name"  # DPUs by metadata.name: a DPU's dpfd is named after its DPU object
NODE_INDEX = "node"  # DPUs by spec.nodeName (registered by provisioning.index_dpus)

MemberHandler = Callable[[MemberInfo], None]


class MemberLedger:
    """The dpfds (roles host and dpu) this replica's gossip member has seen, each in its last known state, indexed the
    way DPUs find them: hosts by node, DPUs by node (= DPU name) and by (host, PCI address)."""

    def __init__(self) -> None:
        self._members: dict[str, MemberInfo] = {}
        self._hosts: dict[str, str] = {}  # node -> member name
        self._dpus: dict[str, str] = {}  # node -> member name
        self._dpus_by_slot: dict[tuple[str, str], str] = {}  # (host, pci key) -> member name
        self._handlers: list[MemberHandler] = []

    def attach(self, agent: GossipAgent) -> Callable[[], None]:
        """Follow ``agent``: what it knows now, then every change. Returns the unsubscribe function."""
        unsubscribe = agent.subscribe(self.on_change)
        for info in agent.members():
            self._record(info)
        return unsubscribe

    def add_handler(self, handler: MemberHandler) -> None:
        self._handlers.append(handler)

    def on_change(self, change: MemberChange, info: MemberInfo) -> None:
        if self._record(info):
            for handler in self._handlers:
                try:
                    handler(info)
                except Exception:
                    log.exception("gossip member handler failed", extra={"member": info.name})

    def host(self, node: str) -> MemberInfo | None:
        name = self._hosts.get(node)
        return self._members.get(name) if name is not None else None

    def dpu(self, dpu_name: str, host: str, pci: str) -> MemberInfo | None:
        name = self._dpus.get(dpu_name)
        if name is None and host and pci:
            name = self._dpus_by_slot.get((host, pci_slot(pci)))
        return self._members.get(name) if name is not None else None

    def _record(self, info: MemberInfo) -> bool:
        """Keep ``info`` if it is a dpfd's; True when it is."""
        meta = info.meta
        if meta is None or meta.role not in ("host", "dpu"):
            return False
        self._members[info.name] = info
        if meta.role == "host":
            self._hosts[meta.node] = info.name
        else:
            self._dpus[meta.node] = info.name
            if meta.host and meta.pci:
                self._dpus_by_slot[(meta.host, pci_slot(meta.pci))] = info.name
        return True


def member_condition(type_: str, what: str, m: MemberInfo) -> Condition:
    who = f"{what} {m.name} ({m.addr})"
    if m.state in ("alive", "suspect"):
        return Condition(type=type_, status="True", reason=REASON_ALIVE, message=f"{who} is alive in gossip")
    if m.state == "left":
        return Condition(type=type_, status="False", reason=REASON_LEFT, message=f"{who} left gossip (it was stopped)")
    return Condition(
        type=type_,
        status="False",
        reason=REASON_FAILED,
        message=f"{who} was declared dead by gossip: it stopped answering",
    )


def reachability_conditions(ledger: MemberLedger, dpu: Obj) -> list[Condition]:
    """The two conditions for ``dpu`` from the view; a condition the view cannot say anything about is carried over
    from the object's status as it is (or left out)."""
    spec = dpu.get("spec") or {}
    node = str(spec.get("nodeName") or "")
    pci = str(spec.get("pciAddress") or "")
    current = _current(dpu)
    out: list[Condition] = []
    dpu_member = ledger.dpu(name_of(dpu), node, pci)
    if dpu_member is not None:
        out.append(member_condition(DPU_DAEMON_REACHABLE, "DPU dpfd", dpu_member))
    elif DPU_DAEMON_REACHABLE in current:
        out.append(current[DPU_DAEMON_REACHABLE])
    host_member = ledger.host(node) if node else None
    if host_member is not None:
        out.append(member_condition(HOST_DAEMON_REACHABLE, "host dpfd", host_member))
    elif HOST_DAEMON_REACHABLE in current:
        out.append(current[HOST_DAEMON_REACHABLE])
    return out


def _current(dpu: Obj) -> dict[str, Condition]:
    found: dict[str, Condition] = {}
    for raw in (dpu.get("status") or {}).get("conditions") or []:
        if isinstance(raw, dict) and raw.get("type") in CONDITION_TYPES:
            try:
                found[raw["type"]] = Condition.model_validate(raw)
            except ValidationError:
                continue
    return found


def affected_dpus(info: MemberInfo, by_index: Callable[[str, str], list[Obj]]) -> list[Obj]:
    """The DPUs whose conditions a change of ``info`` may move: a host's DPUs, or the DPU a DPU's dpfd runs on."""
    meta = info.meta
    if meta is None:
        return []
    if meta.role == "host":
        return by_index(NODE_INDEX, meta.node)
    found = {name_of(d): d for d in by_index(NAME_INDEX, meta.node)}
    if meta.host and meta.pci:
        slot = pci_slot(meta.pci)
        for d in by_index(NODE_INDEX, meta.host):
            if pci_slot(str((d.get("spec") or {}).get("pciAddress") or "")) == slot:
                found.setdefault(name_of(d), d)
    return list(found.values())


def merge_conditions(base: list[object], own: list[Condition], current: list[object]) -> list[object]:
    """``base`` (the report's conditions, or the object's) with ``own`` in place of their types, appended in order;
    an own condition whose status is unchanged keeps the lastTransitionTime the object has."""
    types = {c.type for c in own}
    previous = {c.get("type"): c for c in current if isinstance(c, dict)}
    out = [c for c in base if not (isinstance(c, dict) and c.get("type") in types)]
    for cond in own:
        d = cond.model_dump(mode="json", exclude_none=True)
        prev = previous.get(cond.type)
        if prev is not None and prev.get("status") == d["status"] and prev.get("lastTransitionTime"):
            d["lastTransitionTime"] = prev["lastTransitionTime"]
        out.append(d)
    return out
