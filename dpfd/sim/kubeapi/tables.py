"""`kubectl get` tables (meta.k8s.io/v1 Table): a CRD's printer columns, or the built-in kinds' usual ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dpfd.api.registry import PrinterColumn
from dpfd.sim.kubeapi import jsonpath
from dpfd.sim.kubeapi.resources import ResourceType

Obj = dict[str, Any]
Cell = Callable[[Obj], Any]


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    cell: Cell
    description: str = ""
    priority: int = 0
    format: str = ""

    def definition(self) -> Obj:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery duration.HumanDuration, so ages read as kubectl prints them."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(timestamp: Any) -> str | None:
    if not isinstance(timestamp, str) or not timestamp:
        return None
    try:
        then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration((datetime.now(UTC) - then).total_seconds())


def _meta(obj: Obj, key: str) -> Any:
    return (obj.get("metadata") or {}).get(key)


def _name(obj: Obj) -> Any:
    return _meta(obj, "name")


def _age(obj: Obj) -> Any:
    return age(_meta(obj, "creationTimestamp"))


NAME = Column("Name", "string", _name, "Name must be unique within a namespace.", format="name")
AGE = Column(
    "Age",
    "string",
    _age,
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
)


def _field(path: str) -> Cell:
    """A built-in column's cell; absent values print as <none>, as the built-in printers do."""

    def cell(obj: Obj) -> Any:
        found = jsonpath.find(obj, path)
        return found[0] if found and found[0] not in (None, "") else "<none>"

    return cell


def _node_status(obj: Obj) -> str:
    conds = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conds if c.get("type") == "Ready"), None)
    status = "Unknown" if ready is None else ("Ready" if ready.get("status") == "True" else "NotReady")
    if (obj.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(obj: Obj) -> str:
    labels = _meta(obj, "labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and "/" in k)
    return ",".join(roles) or "<none>"


def _pod_ready(obj: Obj) -> str:
    containers = (obj.get("spec") or {}).get("containers") or []
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    return f"{sum(1 for s in statuses if s.get('ready'))}/{len(containers)}"


def _pod_status(obj: Obj) -> str:
    if _meta(obj, "deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    return str(status.get("reason") or status.get("phase") or "Unknown")


def _pod_restarts(obj: Obj) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (obj.get("status") or {}).get("containerStatuses") or [])


def _budget_bound(key: str) -> Cell:
    """A PodDisruptionBudget's minAvailable or maxUnavailable, N/A when unset (the built-in printer's)."""

    def cell(obj: Obj) -> str:
        value = (obj.get("spec") or {}).get(key)
        return "N/A" if value is None else str(value)

    return cell


def _service_ports(obj: Obj) -> str:
    """80/TCP, or 6443:31234/TCP with a node port (the built-in printer's PORT(S))."""
    out = []
    for p in (obj.get("spec") or {}).get("ports") or []:
        node = f":{p['nodePort']}" if p.get("nodePort") else ""
        out.append(f"{p.get('port')}{node}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _event_object(obj: Obj) -> str:
    ref = obj.get("involvedObject") or obj.get("regarding") or {}
    return f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"


def _event_last_seen(obj: Obj) -> Any:
    return age(obj.get("lastTimestamp") or obj.get("eventTime") or _meta(obj, "creationTimestamp"))


_BUILTIN: dict[tuple[str, str], list[Column]] = {
    ("", "namespaces"): [NAME, Column("Status", "string", _field(".status.phase")), AGE],
    ("", "nodes"): [
        NAME,
        Column("Status", "string", _node_status),
        Column("Roles", "string", _node_roles),
        AGE,
        Column("Version", "string", _field(".status.nodeInfo.kubeletVersion")),
        Column("Internal-IP", "string", _field('.status.addresses[?(@.type=="InternalIP")].address'), priority=1),
    ],
    ("", "pods"): [
        NAME,
        Column("Ready", "string", _pod_ready),
        Column("Status", "string", _pod_status),
        Column("Restarts", "integer", _pod_restarts),
        AGE,
        Column("IP", "string", _field(".status.podIP"), priority=1),
        Column("Node", "string", _field(".spec.nodeName"), priority=1),
    ],
    ("policy", "poddisruptionbudgets"): [
        NAME,
        Column(
            "Min Available",
            "string",
            _budget_bound("minAvailable"),
            "The minimum number of pods that must be available.",
        ),
        Column(
            "Max Unavailable",
            "string",
            _budget_bound("maxUnavailable"),
            "The maximum number of pods that may be unavailable.",
        ),
        Column(
            "Allowed Disruptions",
            "integer",
            lambda o: int((o.get("status") or {}).get("disruptionsAllowed") or 0),
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
    ("", "secrets"): [
        NAME,
        Column("Type", "string", _field(".type")),
        Column("Data", "integer", lambda o: len(o.get("data") or {})),
        AGE,
    ],
    ("", "configmaps"): [
        NAME,
        Column("Data", "integer", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {})),
        AGE,
    ],
    ("", "services"): [
        NAME,
        Column("Type", "string", _field(".spec.type")),
        Column("Cluster-IP", "string", _field(".spec.clusterIP")),
        Column("External-IP", "string", lambda o: "<none>"),  # nothing gives LoadBalancers addresses here
        Column("Port(s)", "string", _service_ports),
        AGE,
        Column(
            "Selector",
            "string",
            lambda o: (
                ",".join(f"{k}={v}" for k, v in ((o.get("spec") or {}).get("selector") or {}).items()) or "<none>"
            ),
            priority=1,
        ),
    ],
    ("", "serviceaccounts"): [NAME, Column("Secrets", "integer", lambda o: len(o.get("secrets") or [])), AGE],
    ("", "events"): [
        Column("Last Seen", "string", _event_last_seen),
        Column("Type", "string", _field(".type")),
        Column("Reason", "string", _field(".reason")),
        Column("Object", "string", _event_object),
        Column("Message", "string", _field(".message")),
    ],
    ("coordination.k8s.io", "leases"): [
        NAME,
        Column("Holder", "string", _field(".spec.holderIdentity")),
        AGE,
    ],
    ("apiextensions.k8s.io", "customresourcedefinitions"): [
        NAME,
        Column("Created At", "date", lambda o: _meta(o, "creationTimestamp")),
    ],
}


def _printer_cell(col: PrinterColumn) -> Cell:
    """Like the API server's CRD table convertor: dates as ages, strings as printed, typed otherwise."""

    def cell(obj: Obj) -> Any:
        try:
            found = jsonpath.find(obj, col.json_path)
        except jsonpath.JsonPathError:
            return None
        if not found or found[0] is None:
            return None
        value = found[0]
        if col.type == "date":
            return age(value)
        if col.type == "string":
            return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        if col.type == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
        if col.type == "boolean" and isinstance(value, bool):
            return value
        if col.type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return value
        return None

    return cell


def columns_for(rt: ResourceType, version: str) -> list[Column]:
    if rt.crd_name is None:
        return _BUILTIN.get(rt.key, [NAME, AGE])
    cols = [NAME]
    has_age = False
    for c in rt.printer_columns.get(version, ()):
        has_age = has_age or c.json_path.strip("{}") == ".metadata.creationTimestamp"
        # date cells are formatted here, so kubectl is told they are strings
        cols.append(
            Column(
                c.name,
                "string" if c.type == "date" else c.type,
                _printer_cell(c),
                c.description,
                c.priority,
                c.format,
            )
        )
    if not has_age:
        cols.append(AGE)
    return cols


def _row_object(obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata", {}),
    }


def table(
    columns: list[Column],
    objects: list[Obj],
    resource_version: str,
    *,
    include_object: str = "Metadata",
    headers: bool = True,
) -> Obj:
    rows = []
    for obj in objects:
        row: Obj = {"cells": [c.cell(obj) for c in columns]}
        ref = _row_object(obj, include_object)
        if ref is not None:
            row["object"] = ref
        rows.append(row)
    out: Obj = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
    }
    if headers:
        out["columnDefinitions"] = [c.definition() for c in columns]
    out["rows"] = rows
    return out
