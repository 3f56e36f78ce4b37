"""How dpfctl shows what one dpfd answers: its status, its DPUs (a table, or one described in full), its intents,
its events and its log lines. Tables for people; `-o json|yaml` print the answer's fields as they are."""

from __future__ import annotations

import json
import time
from typing import Any

from dpfd.cli.output import age, bar, clock, dump, proto_dict, table
from dpfd.proto.dpf.admin.v1 import admin_pb2

# --- status -------------------------------------------------------------------------------------------------------


def status(s: admin_pb2.GetStatusResponse, output: str) -> str:
    if output != "table":
        return dump(proto_dict(s), output)
    lines = [("Node", f"{s.node} ({s.role}, dpfd {s.version}, up {age(s.started) or '?'})")]
    if s.HasField("etcd"):
        e = s.etcd
        where = e.endpoint or ",".join(e.endpoints)
        if e.connected:
            etcd = f"connected to {where}, registered (fencing token {e.fencing_token})"
        elif e.registered:
            etcd = f"session lost ({where}); keeping the machine as it is"
        else:
            etcd = f"not registered yet ({where})"
        lines.append(("etcd", etcd))
        lines.append(("Intents", f"{s.intents}{'' if s.ready else ' (not listed yet)'}, {s.busy} reconciling"))
    if s.role == "host":
        lines.append(("DPUs", str(s.dpus)))
        lines.append(("Drain", drain_text(s.drain)))
    if s.HasField("gossip"):
        g = s.gossip
        p = g.packets
        lines.append(("Gossip", f"{g.name} at {g.address}, health {g.health_score}; {g.alive} alive, {g.suspect} "
                                f"suspect, {g.dead} dead, {g.left} left"))  # fmt: skip
        lines.append(("Packets", f"{p.accepted} accepted, {p.forged} forged, {p.replayed} replayed, {p.oversized} "
                                 f"oversized, {p.malformed} malformed, {p.skewed} skewed"))  # fmt: skip
    else:
        lines.append(("Gossip", "off"))
    width = max(len(k) for k, _ in lines) + 2
    return "\n".join(f"{k + ':':<{width}}{v}" for k, v in lines)


def drain_text(d: admin_pb2.DrainStatus) -> str:
    if not d.draining:
        return "not drained"
    why = f" ({d.reason})" if d.reason else ""
    since = f" since {clock(d.since)}" if d.since else ""
    if d.in_flight:
        return f"draining{since}{why}: {d.in_flight} DPU(s) still finishing their step"
    return f"drained{since}{why}: no provisioning work runs"


# --- DPUs ---------------------------------------------------------------------------------------------------------

DPU_HEADERS = ("NAMESPACE", "NAME", "PHASE", "PCI", "BFB", "SINCE", "STATUS")


def dpus(items: list[admin_pb2.Dpu], output: str, now: float | None = None) -> str:
    if output != "table":
        return dump([proto_dict(d) for d in items], output)
    return table(DPU_HEADERS, [dpu_row(d, now) for d in items])


def dpu_row(d: admin_pb2.Dpu, now: float | None = None) -> list[str]:
    since = d.history[-1].at if d.history else 0.0
    return [d.namespace, d.name, d.phase, d.pci_address, d.bfb, age(since, now), dpu_state(d)]


def dpu_state(d: admin_pb2.Dpu) -> str:
    """One cell on how the DPU is doing: bytes moving, why it waits, or its failure."""
    if d.deleting:
        return "deleting"
    if not d.has_intent:
        return "released (intent gone)"
    if d.HasField("progress"):
        return f"{d.progress.step} {bar(d.progress.done, d.progress.total)}"
    if d.HasField("error"):
        retry = f", retry in {max(0, int(d.retry_at - time.time()))}s" if d.retry_at else ""
        return f"{d.error.reason} (attempt {d.attempts}{retry})"
    if d.held:
        return "held: host drained"
    for c in d.conditions:
        if c.status != "True":
            return f"{c.reason}: {c.message}" if c.message else c.reason
    return ""


def describe(d: admin_pb2.Dpu, output: str, now: float | None = None) -> str:
    if output != "table":
        return dump(proto_dict(d), output)
    now = time.time() if now is None else now
    fields = [
        ("Name", d.name),
        ("Namespace", d.namespace),
        ("Node", d.node),
        ("PCI address", d.pci_address),
        ("BFB", d.bfb),
        ("Flavor", d.flavor),
        ("DPUSet", d.dpu_set),
        ("Phase", d.phase + ("  (held: host drained)" if d.held else "")),
        ("Generation", f"{d.generation} (observed {d.observed_generation})"),
        ("Lock token", str(d.lock_token) if d.lock_token else ""),
    ]
    if d.HasField("progress"):
        fields.append(("Progress", f"{d.progress.step} {bar(d.progress.done, d.progress.total)}"))
    if d.HasField("error"):
        e = d.error
        retry = f"; retry at {clock(d.retry_at)}" if d.retry_at else ""
        fields.append(("Error", f"{e.phase}: {e.reason}: {e.message} (attempt {d.attempts}{retry})"))
    if not d.has_intent:
        fields.append(("Intent", "gone: the DPU is being released"))
    width = max(len(k) for k, _ in fields) + 2
    out = [f"{k + ':':<{width}}{v}".rstrip() for k, v in fields]
    out.append("Phases:")
    rows = []
    for i, h in enumerate(d.history):
        until = d.history[i + 1].at if i + 1 < len(d.history) else now
        lasted = _duration(until - h.at) if h.at and until else ""
        rows.append([h.phase, clock(h.at), lasted])
    out.append(_indent(table(("PHASE", "ENTERED", "FOR"), rows)))
    out.append("Conditions:")
    conds = [[c.type, c.status, c.reason, c.last_transition_time, c.message] for c in d.conditions]
    out.append(_indent(table(("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"), conds)))
    out.append("Events:")
    out.append(_indent(table(("TIME", "TYPE", "MESSAGE"), [[clock(e.at), e.type, event_text(e)] for e in d.events])))
    return "\n".join(out)


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


# --- intents ------------------------------------------------------------------------------------------------------


def intents(items: list[admin_pb2.IntentEntry], output: str, show: str = "intents") -> str:
    """``show``: intents (what was asked) or reports (what was answered)."""
    if output != "table":
        records = []
        for i in items:
            record: dict[str, Any] = json.loads(i.intent_json) if i.intent_json else {"error": i.error}
            if show == "reports":
                record = json.loads(i.report_json) if i.report_json else {}
                if not record:
                    continue
            records.append(record)
        return dump(records, output)
    if show == "reports":
        rows = [[i.kind, i.namespace, i.name, str(i.observed_generation), i.phase, i.updated_at]
                for i in items if i.report_json]  # fmt: skip
        return table(("KIND", "NAMESPACE", "NAME", "OBSERVED", "PHASE", "UPDATED"), rows)
    rows = [[i.kind, i.namespace, i.name, str(i.generation), str(i.deleting).lower(), i.phase, i.error]
            for i in items]  # fmt: skip
    return table(("KIND", "NAMESPACE", "NAME", "GENERATION", "DELETING", "PHASE", "ERROR"), rows)


# --- events and logs ----------------------------------------------------------------------------------------------


def event_text(e: admin_pb2.Event) -> str:
    what = f"{e.kind} {e.namespace}/{e.name}" if e.kind else e.name
    if e.type == "phase":
        change = f"{e.previous_phase} -> {e.phase}" if e.previous_phase else e.phase
        text = f"{what}: {change}"
    elif e.type == "missed":
        return e.message
    elif e.HasField("progress"):
        text = f"{what}: {e.phase} {e.progress.step} {bar(e.progress.done, e.progress.total)}"
    elif e.type == "report":
        text = f"{what}: {e.phase}"
    else:
        return e.message or what
    return f"{text} ({e.message})" if e.message else text


def event_line(e: admin_pb2.Event, output: str) -> str:
    if output == "json":
        return json.dumps(proto_dict(e), separators=(",", ":"))
    if output == "yaml":
        return "---\n" + dump(proto_dict(e), "yaml")
    return f"{clock(e.at)}  {e.type:<8} {event_text(e)}"


def log_line(record: admin_pb2.LogRecord, output: str) -> str:
    if record.missed:
        text = f"... {record.missed} lines dropped: dpfctl read too slowly"
        return text if output == "table" else json.dumps({"missed": record.missed})
    if output == "json":
        return json.dumps(proto_dict(record), separators=(",", ":"))
    if output == "yaml":
        return "---\n" + dump(proto_dict(record), "yaml")
    return record.line
