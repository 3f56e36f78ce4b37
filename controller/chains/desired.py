"""Pure fan-out rules: which DPU Nodes get a set's child, the child intents, and the set's status.

DPF creates a same-named set in every DPUCluster the clusterSelector picks (an empty or missing selector picks
all), and in each set one child `<set name>-<node>` for every DPU Node its nodeSelector picks (missing: all).
Here the children are intents for the DPU's dpfd (the Node's name is the DPU's name), and only Nodes whose DPU
dpfd is a member get one: without a dpfd nothing would apply it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.chains.family import Family
from controller.kube.objects import (
    Obj,
    ObjKey,
    generation_of,
    is_deleting,
    key_of,
    labels_of,
    name_of,
    namespace_of,
    uid_of,
)
from controller.refs import object_ref
from dpfd.api.conditions import Condition, find_condition
from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.api.jsontree import copy_json
from dpfd.api.meta import selector_matches


def child_name(set_name: str, node: str) -> str:
    """DPF's name for a set's object on one Node."""
    return f"{set_name}-{node}"


def child_ref(family: Family, namespace: str, set_name: str, node: str) -> ObjectRef:
    return object_ref(family.child_kind, namespace, child_name(set_name, node))


def set_of_child(ref: ObjectRef, node: str) -> ObjKey | None:
    """The set (and so the DPUService* object) a child belongs to, from its name; None if not `<set>-<node>`."""
    suffix = f"-{node}"
    if not ref.name.endswith(suffix) or len(ref.name) == len(suffix):
        return None
    return ObjKey(ref.namespace, ref.name[: -len(suffix)])


def _set_template(obj: Obj) -> dict[str, Any]:
    """spec.template.spec: the set's spec (nodeSelector and the child template)."""
    return dict((((obj.get("spec") or {}).get("template") or {}).get("spec")) or {})


def selects_cluster(obj: Obj, cluster: Obj) -> bool:
    selector = (obj.get("spec") or {}).get("clusterSelector")
    return not selector or selector_matches(selector, labels_of(cluster))


def selects_node(obj: Obj, node: Obj) -> bool:
    selector = _set_template(obj).get("nodeSelector")
    return selector is None or selector_matches(selector, labels_of(node))


@dataclass
class ClusterNodes:
    """One DPU cluster as the fan-out sees it: its Nodes, or None while they are not known."""

    key: ObjKey
    nodes: list[Obj] | None
    why_unknown: str = ""


@dataclass
class Selection:
    """The DPU Nodes a DPUService* object selects, by cluster."""

    nodes: dict[ObjKey, list[str]] = field(default_factory=dict)  # cluster -> selected Node names with a dpfd
    unknown: dict[ObjKey, str] = field(default_factory=dict)  # selected clusters whose Nodes are not known: why
    without_dpfd: dict[ObjKey, list[str]] = field(default_factory=dict)  # selected Nodes with no DPU dpfd

    def all_nodes(self) -> list[str]:
        return sorted({n for names in self.nodes.values() for n in names})


def select(
    obj: Obj,
    clusters: Iterable[Obj],
    cluster_nodes: Callable[[ObjKey], ClusterNodes],
    is_dpu_member: Callable[[str], bool],
) -> Selection:
    sel = Selection()
    for cluster in sorted(clusters, key=key_of):
        if not selects_cluster(obj, cluster):
            continue
        known = cluster_nodes(key_of(cluster))
        if known.nodes is None:
            sel.unknown[known.key] = known.why_unknown or "its Nodes are not known yet"
            continue
        picked = sorted(name_of(n) for n in known.nodes if selects_node(obj, n))
        sel.nodes[known.key] = [n for n in picked if is_dpu_member(n)]
        missing = [n for n in picked if not is_dpu_member(n)]
        if missing:
            sel.without_dpfd[known.key] = missing
    return sel


def child_intent(family: Family, obj: Obj, node: str) -> Intent:
    """The child `<set>-<node>` for the DPU's dpfd: DPF's child spec with `node` set, the template's labels
    (chain ports select interfaces by them) and annotations."""
    child_template = dict(_set_template(obj).get("template") or {})
    spec = copy_json(dict(child_template.get("spec") or {}))
    spec["node"] = node
    meta = child_template.get("metadata") or {}
    return Intent(
        node=node,
        ref=child_ref(family, namespace_of(obj), name_of(obj), node),
        uid=uid_of(obj),
        generation=generation_of(obj),
        spec=spec,
        labels=dict(meta.get("labels") or {}),
        annotations=dict(meta.get("annotations") or {}),
        deleting=is_deleting(obj),
    )


# ------------------------------------------------------------------------------------------- status

REASON_SUCCESS = "Success"  # DPF's internal/conditions reasons
REASON_PENDING = "Pending"
REASON_ERROR = "Error"
REASON_AWAITING_DELETION = "AwaitingDeletion"


def child_ready(intent: Intent, report: Report | None) -> tuple[bool, str]:
    """Whether the dpfd reports the child applied and Ready for this incarnation and generation; else why not."""
    if report is None:
        return False, "no report yet"
    if report.uid != intent.uid:
        return False, "reported for another incarnation"
    if report.observedGeneration < intent.generation:
        return False, f"generation {intent.generation} not observed yet (at {report.observedGeneration})"
    ready = find_condition(report.conditions, "Ready")
    if ready is None:
        return False, f"phase {report.phase or 'unknown'}, no Ready condition"
    if ready.status != "True":
        return False, f"{ready.reason}: {ready.message}" if ready.message else ready.reason or "not Ready"
    return True, ""


@dataclass
class SetNumbers:
    """DPF's set status numbers for one DPU cluster's set, and why its children that are not ready are not."""

    numberApplied: int = 0
    numberReady: int = 0
    not_ready: list[str] = field(default_factory=list)  # "<child>: <why>"


@dataclass
class FanoutStatus:
    numbers: dict[ObjKey, SetNumbers]
    conditions: list[Condition]


def fanout_status(
    family: Family,
    obj: Obj,
    sel: Selection,
    intents: Mapping[str, Intent],
    report_of: Callable[[Intent], Report | None],
    problem: str = "",
) -> FanoutStatus:
    """The DPUService* status: ServiceXSetReconciled (every selected cluster's Nodes known, intents declared),
    ServiceXSetReady (every child reported Ready) and Ready (both), each with what is missing."""
    gen = generation_of(obj)
    by_node = {i.node: i for i in intents.values()}
    numbers: dict[ObjKey, SetNumbers] = {}
    not_ready: list[str] = []
    for cluster, names in sel.nodes.items():
        n = numbers[cluster] = SetNumbers()
        for node in names:
            intent = by_node.get(node)
            if intent is None:
                continue
            n.numberApplied += 1
            ok, why = child_ready(intent, report_of(intent))
            if ok:
                n.numberReady += 1
            else:
                n.not_ready.append(f"{intent.ref.name}: {why}")
                not_ready.append(n.not_ready[-1])

    def cond(type_: str, ok: bool, reason: str, message: str) -> Condition:
        return Condition(type=type_, status="True" if ok else "False", observedGeneration=gen, reason=reason,
                         message=message)  # fmt: skip

    if problem:
        reconciled = cond(family.cond_reconciled, False, REASON_ERROR, problem)
    elif sel.unknown:
        why = "; ".join(f"DPUCluster {k}: {v}" for k, v in sel.unknown.items())
        reconciled = cond(family.cond_reconciled, False, REASON_PENDING, why)
    else:
        reconciled = cond(family.cond_reconciled, True, REASON_SUCCESS, "")
    applied = sum(n.numberApplied for n in numbers.values())
    ready_count = sum(n.numberReady for n in numbers.values())
    counts = "; ".join(
        f"{family.set_kind} {k}: numberApplied {n.numberApplied}, numberReady {n.numberReady}"
        for k, n in numbers.items()
    )
    if is_deleting(obj):
        ready = cond(family.cond_ready, False, REASON_AWAITING_DELETION,
                     f"waiting for {applied} {family.child_kind}(s) to be released")  # fmt: skip
    elif not_ready:
        shown = "; ".join(not_ready[:10]) + (f"; and {len(not_ready) - 10} more" if len(not_ready) > 10 else "")
        ready = cond(family.cond_ready, False, REASON_PENDING,
                     f"{ready_count} of {applied} {family.child_kind}(s) ready ({counts}); {shown}")  # fmt: skip
    else:
        ready = cond(family.cond_ready, True, REASON_SUCCESS, counts)
    order = (ready, reconciled) if is_deleting(obj) else (reconciled, ready)
    summary = next((c for c in order if c.status != "True"), None)
    if summary is None:
        top = cond("Ready", True, REASON_SUCCESS, "")
    else:
        top = cond("Ready", False, summary.reason, f"{summary.type}: {summary.message}")
    return FanoutStatus(numbers, [top, reconciled, ready])
