"""The admin API's answers as protobuf messages (proto/dpf/admin/v1/admin.proto), from the daemon's own records."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dpfd.proto.dpf.admin.v1 import admin_pb2

if TYPE_CHECKING:  # the host role's parts are imported only where they run
    from dpfd.admin.dpus import DpuInfo
    from dpfd.admin.events import AdminEvent, StepProgress
    from dpfd.admin.logbuffer import LogLine
    from dpfd.admin.operations import ActionResult
    from dpfd.admin.status import DaemonStatus, DrainStatus
    from dpfd.agent.intent_view import IntentEntry
    from dpfd.gossip.view import MemberInfo


def member_message(m: MemberInfo) -> admin_pb2.Member:
    msg = admin_pb2.Member(name=m.name, address=m.addr, state=m.state, incarnation=m.incarnation)
    if m.meta is not None:
        msg.role = m.meta.role
        msg.node = m.meta.node
        msg.version = m.meta.version
        msg.started = m.meta.started
        msg.addresses.update(m.meta.addresses)
        msg.host = m.meta.host
        msg.pci = m.meta.pci
    return msg


def status_message(s: DaemonStatus) -> admin_pb2.GetStatusResponse:
    msg = admin_pb2.GetStatusResponse(node=s.node, role=s.role, version=s.version, started=s.started, dpus=s.dpus)
    if s.gossip is not None:
        g = s.gossip
        gossip = admin_pb2.GossipStatus(enabled=True, name=g.name, address=g.address, health_score=g.health_score,
                                        alive=g.alive, suspect=g.suspect, dead=g.dead, left=g.left)  # fmt: skip
        if g.packets is not None:
            p = g.packets
            gossip.packets.CopyFrom(admin_pb2.PacketStats(accepted=p.accepted, forged=p.forged, replayed=p.replayed,
                                                          oversized=p.oversized, malformed=p.malformed,
                                                          skewed=p.skewed))  # fmt: skip
        msg.gossip.CopyFrom(gossip)
    if s.etcd is not None:
        e = s.etcd
        msg.etcd.CopyFrom(admin_pb2.EtcdStatus(endpoints=list(e.endpoints), endpoint=e.endpoint, connected=e.connected,
                                               registered=e.registered, fencing_token=e.fencing_token,
                                               registrations=e.registrations))  # fmt: skip
    if s.work is not None:
        msg.ready, msg.intents, msg.busy = s.work.ready, s.work.intents, s.work.busy
    if s.drain is not None:
        msg.drain.CopyFrom(drain_message(s.drain, s.node))
    return msg


def progress_message(p: StepProgress) -> admin_pb2.StepProgress:
    return admin_pb2.StepProgress(step=p.step, done=p.done, total=p.total)


def dpu_message(d: DpuInfo, events: list[AdminEvent] | None = None) -> admin_pb2.Dpu:
    msg = admin_pb2.Dpu(
        name=d.name,
        namespace=d.namespace,
        node=d.node,
        pci_address=d.pci_address,
        bfb=d.bfb,
        flavor=d.flavor,
        dpu_set=d.dpu_set,
        phase=d.phase,
        conditions=[_condition(c) for c in d.conditions],
        history=[admin_pb2.PhaseEntry(phase=h.phase, at=h.at) for h in d.history],
        attempts=d.attempts,
        retry_at=d.retry_at,
        generation=d.generation,
        observed_generation=d.observed_generation,
        lock_token=d.lock_token,
        deleting=d.deleting,
        held=d.held,
        updated_at=d.updated_at,
        has_intent=d.has_intent,
        events=[event_message(e) for e in events or []],
    )
    if d.error is not None:
        e = d.error
        msg.error.CopyFrom(admin_pb2.DpuError(phase=e.phase, reason=e.reason, message=e.message, at=e.at))
    if d.progress is not None:
        msg.progress.CopyFrom(progress_message(d.progress))
    return msg


def _condition(c: dict[str, Any]) -> admin_pb2.Condition:
    return admin_pb2.Condition(type=str(c.get("type", "")), status=str(c.get("status", "")),
                               reason=str(c.get("reason", "")), message=str(c.get("message", "")),
                               last_transition_time=str(c.get("lastTransitionTime", "")))  # fmt: skip


def event_message(e: AdminEvent) -> admin_pb2.Event:
    msg = admin_pb2.Event(at=e.at, type=e.type, kind=e.kind, namespace=e.namespace, name=e.name, phase=e.phase,
                          previous_phase=e.previous_phase, message=e.message, fields=e.fields)  # fmt: skip
    if e.progress is not None:
        msg.progress.CopyFrom(progress_message(e.progress))
    return msg


def missed_message(count: int, at: float, what: str = "events") -> admin_pb2.Event:
    return admin_pb2.Event(at=at, type="missed", missed=count,
                           message=f"{count} {what} dropped: this watcher read too slowly")  # fmt: skip


def log_message(line: LogLine) -> admin_pb2.LogRecord:
    return admin_pb2.LogRecord(at=line.at, level=line.level, logger=line.logger, line=line.line)


def intent_message(entry: IntentEntry, report: dict[str, Any] | None) -> admin_pb2.IntentEntry:
    msg = admin_pb2.IntentEntry(kind=entry.ref.kind, namespace=entry.ref.namespace, name=entry.ref.name,
                                generation=entry.generation, error=entry.error)  # fmt: skip
    if entry.intent is not None:
        msg.deleting = entry.intent.deleting
        msg.intent_json = entry.intent.model_dump_json()
    if report is not None:
        msg.phase = str(report.get("phase") or "")
        msg.observed_generation = int(report.get("observedGeneration") or 0)
        msg.updated_at = str(report.get("updatedAt") or "")
        msg.report_json = json.dumps(report, separators=(",", ":"))
    return msg


def action_message(r: ActionResult) -> admin_pb2.DpuActionResponse:
    return admin_pb2.DpuActionResponse(name=r.dpu.name, namespace=r.dpu.namespace, action=r.action,
                                       request_id=r.request_id, message=r.message)  # fmt: skip


def drain_message(d: DrainStatus, node: str) -> admin_pb2.DrainStatus:
    return admin_pb2.DrainStatus(draining=d.draining, since=d.since, reason=d.reason, in_flight=d.in_flight,
                                 node=node)  # fmt: skip
