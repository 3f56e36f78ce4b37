"""The fleet as etcd holds it: which dpfds are registered, what each node was asked (intents) and what it answered
(reports), and the views dpfctl builds from them — every DPU, every BFB with its hosts' downloads, every DPUSet.

etcd endpoints come from --etcd, else $DPF_ETCD_ENDPOINTS, else the `etcd.endpoints` of /etc/dpf/dpfd.yaml.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dpfd.api.wellknown import DPUSET_NAME, DPUSET_NAMESPACE
from dpfd.cli.errors import EXIT_USAGE, CliError
from dpfd.cli.output import table
from dpfd.config import ConfigError, load_config
from dpfd.store import Store, StoreError, keys

ENDPOINTS_ENV = "DPF_ETCD_ENDPOINTS"
TIMEOUT = 3.0

Record = dict[str, Any]


def endpoints_from(arg: str | None) -> list[str]:
    if arg:
        return [e for e in arg.split(",") if e]
    if os.environ.get(ENDPOINTS_ENV):
        return [e for e in os.environ[ENDPOINTS_ENV].split(",") if e]
    try:
        return list(load_config().etcd.endpoints)
    except ConfigError as e:
        raise CliError(f"no etcd endpoints: pass --etcd, set {ENDPOINTS_ENV}, or fix the dpfd config ({e})",
                       EXIT_USAGE) from None  # fmt: skip


@dataclass
class Snapshot:
    """What was read from etcd, by key prefix."""

    members: list[Record] = field(default_factory=list)
    intents: list[Record] = field(default_factory=list)
    reports: list[Record] = field(default_factory=list)


async def read(endpoints: list[str], *, members: bool = False, intents: bool = False, reports: bool = False,
               node: str | None = None) -> Snapshot:  # fmt: skip
    """One connection, the prefixes asked for (only ``node``'s when given)."""
    try:
        prefixes = {
            "members": (keys.member_key(node) if node else keys.MEMBERS_PREFIX) if members else None,
            "intents": keys.intents_prefix(node) if intents else None,
            "reports": keys.reports_prefix(node) if reports else None,
        }
    except ValueError as e:  # a node name that cannot be a key segment
        raise CliError(str(e), EXIT_USAGE) from None
    snap = Snapshot()
    try:
        async with await Store.connect(endpoints, dial_timeout=TIMEOUT, request_timeout=TIMEOUT) as store:
            for what, prefix in prefixes.items():
                if prefix is None:
                    continue
                kvs, _ = await store.get_prefix(prefix)
                records = []
                for kv in kvs:
                    try:
                        record = json.loads(kv.value)
                    except ValueError:
                        record = {"error": f"not JSON: {kv.key}"}
                    if what == "members":
                        record.setdefault("node", kv.key.rsplit("/", 1)[-1])
                    records.append(record)
                setattr(snap, what, records)
    except (StoreError, OSError, TimeoutError) as e:
        raise CliError(f"cannot read etcd at {','.join(endpoints)}: {e}") from None
    return snap


def _get(record: Record, path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def _key(record: Record) -> tuple[str, str, str]:
    ref = record.get("ref") or {}
    return str(ref.get("kind", "")), str(ref.get("namespace", "")), str(ref.get("name", ""))


def dpus(snap: Snapshot) -> list[Record]:
    """Every DPU the fleet reports on, with what its intent says about where it sits."""
    intents = {(_key(i), i.get("node")): i for i in snap.intents if _key(i)[0] == "DPU"}
    out = []
    for r in snap.reports:
        kind, namespace, name = _key(r)
        if kind != "DPU":
            continue
        intent = intents.get(((kind, namespace, name), r.get("node"))) or {}
        spec, labels = intent.get("spec") or {}, intent.get("labels") or {}
        details = r.get("details") or {}
        out.append({
            "node": r.get("node", ""), "namespace": namespace, "name": name, "phase": r.get("phase", ""),
            "pciAddress": spec.get("pciAddress", ""), "bfb": spec.get("bfb", ""),
            "dpuSet": labels.get(DPUSET_NAME, ""), "observedGeneration": r.get("observedGeneration"),
            "progress": details.get("progress"), "conditions": r.get("conditions") or [],
            "updatedAt": r.get("updatedAt", ""),
        })  # fmt: skip
    return sorted(out, key=lambda d: (d["namespace"], d["name"], d["node"]))


def bfbs(snap: Snapshot) -> list[Record]:
    """Each BFB once, with how many hosts were asked to hold it and how far each got."""
    phases: dict[tuple[str, str], Counter[str]] = {}
    for r in snap.reports:
        kind, namespace, name = _key(r)
        if kind == "BFB":
            phases.setdefault((namespace, name), Counter())[str(r.get("phase") or "Unknown")] += 1
    found: dict[tuple[str, str], Record] = {}
    for i in snap.intents:
        kind, namespace, name = _key(i)
        if kind != "BFB":
            continue
        spec = i.get("spec") or {}
        entry = found.setdefault((namespace, name), {"namespace": namespace, "name": name, "url": spec.get("url", ""),
                                                     "fileName": spec.get("fileName", ""), "hosts": 0})  # fmt: skip
        entry["hosts"] += 1
    for key, entry in found.items():
        counts = phases.get(key, Counter())
        entry["ready"] = counts.get("Ready", 0)
        entry["phases"] = dict(sorted(counts.items()))
    return [found[k] for k in sorted(found)]


def dpusets(snap: Snapshot) -> list[Record]:
    """Each DPUSet once (from its DPUs' intents), with how many of its DPUs are in which phase."""
    reports = {(_key(r), r.get("node")): r for r in snap.reports}
    found: dict[tuple[str, str], Record] = {}
    for i in snap.intents:
        kind, namespace, _ = _key(i)
        labels = i.get("labels") or {}
        if kind != "DPU" or not labels.get(DPUSET_NAME):
            continue
        key = (str(labels.get(DPUSET_NAMESPACE) or namespace), str(labels[DPUSET_NAME]))
        entry = found.setdefault(key, {"namespace": key[0], "name": key[1], "dpus": 0, "ready": 0, "phases": Counter(),
                                       "bfbs": set()})  # fmt: skip
        entry["dpus"] += 1
        phase = str((reports.get((_key(i), i.get("node"))) or {}).get("phase") or "Unknown")
        entry["phases"][phase] += 1
        entry["ready"] += phase == "Ready"
        entry["bfbs"].add(str((i.get("spec") or {}).get("bfb") or ""))
    out = []
    for key in sorted(found):
        entry = found[key]
        out.append({**entry, "phases": dict(sorted(entry["phases"].items())), "bfbs": sorted(entry["bfbs"] - {""})})
    return out


@dataclass(frozen=True)
class View:
    """What `dpfctl get WHAT --fleet` reads, how it is shaped, and its table's columns (title, path)."""

    read: dict[str, bool]
    shape: Callable[[Snapshot], list[Record]]
    columns: list[tuple[str, str]]


VIEWS: dict[str, View] = {
    "members": View(
        {"members": True},
        lambda s: s.members,
        [("NODE", "node"), ("ROLE", "role"), ("VERSION", "version"), ("PID", "pid"), ("STARTED", "startedAt")],
    ),
    "intents": View(
        {"intents": True},
        lambda s: s.intents,
        [
            ("NODE", "node"),
            ("KIND", "ref.kind"),
            ("NAMESPACE", "ref.namespace"),
            ("NAME", "ref.name"),
            ("GENERATION", "generation"),
            ("DELETING", "deleting"),
        ],
    ),
    "reports": View(
        {"reports": True},
        lambda s: s.reports,
        [
            ("NODE", "node"),
            ("KIND", "ref.kind"),
            ("NAMESPACE", "ref.namespace"),
            ("NAME", "ref.name"),
            ("OBSERVED", "observedGeneration"),
            ("PHASE", "phase"),
            ("UPDATED", "updatedAt"),
        ],
    ),
    "dpus": View(
        {"intents": True, "reports": True},
        dpus,
        [
            ("NODE", "node"),
            ("NAMESPACE", "namespace"),
            ("NAME", "name"),
            ("PHASE", "phase"),
            ("PCI", "pciAddress"),
            ("BFB", "bfb"),
            ("DPUSET", "dpuSet"),
            ("UPDATED", "updatedAt"),
        ],
    ),
    "bfbs": View(
        {"intents": True, "reports": True},
        bfbs,
        [
            ("NAMESPACE", "namespace"),
            ("NAME", "name"),
            ("FILE", "fileName"),
            ("HOSTS", "hosts"),
            ("READY", "ready"),
            ("PHASES", "phases"),
        ],
    ),
    "dpusets": View(
        {"intents": True, "reports": True},
        dpusets,
        [
            ("NAMESPACE", "namespace"),
            ("NAME", "name"),
            ("DPUS", "dpus"),
            ("READY", "ready"),
            ("PHASES", "phases"),
            ("BFB", "bfbs"),
        ],
    ),
}


async def fetch(endpoints: list[str], what: str, node: str | None = None) -> list[Record]:
    view = VIEWS[what]
    return view.shape(await read(endpoints, node=node, **view.read))


def render_table(what: str, records: list[Record]) -> str:
    columns = VIEWS[what].columns
    rows = [[_cell(_value(r, path)) for _, path in columns] for r in records]
    return table([title for title, _ in columns], rows)


def _value(record: Record, path: str) -> Any:
    value = _get(record, path)
    return ",".join(value) if isinstance(value, list) else value
