"""Which DPU Nodes a DPUServiceIPAM gives ranges to, and the status it gets (pure functions).

Selection is the chaining fan-out's (controller.chains.desired.select): the clusterSelector picks DPUClusters by
their labels (missing or empty: all). Unlike a DPUServiceInterface's set, a DPUServiceIPAM's nodeSelector is a
corev1.NodeSelector at spec.nodeSelector (missing: every Node, as nv-ipam pools do), so the Nodes are filtered
here before `select` sees them. Every selected Node gets a range, whether its dpfd is a member or not: a dpfd
restarting must find its range and its allocations still there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from controller.chains.desired import (
    REASON_ERROR,
    REASON_PENDING,
    REASON_SUCCESS,
    ClusterNodes,
    Selection,
    select,
)
from controller.chains.family import SVC_GROUP
from controller.kube.objects import Obj, ObjKey, generation_of, labels_of, name_of
from controller.kube.resources import ResourceType
from dpfd.api.conditions import Condition
from dpfd.api.meta import node_selector_matches

DPUSERVICEIPAMS: Final = ResourceType(SVC_GROUP, "v1alpha1", "dpuserviceipams", "DPUServiceIPAM", namespaced=True)
FINALIZER: Final = "svc.dpu.nvidia.com/dpuserviceipam"
COND_RECONCILED: Final = "DPUIPAMObjectReconciled"  # DPF's ConditionDPUIPAMObjectReconciled
REASON_EXHAUSTED: Final = "PoolExhausted"


def _node_filter(obj: Obj) -> Callable[[Obj], bool]:
    selector = (obj.get("spec") or {}).get("nodeSelector")
    if selector is None:
        return lambda node: True
    return lambda node: node_selector_matches(selector, labels_of(node), {"metadata.name": name_of(node)})


def select_nodes(obj: Obj, clusters: Iterable[Obj], cluster_nodes: Callable[[ObjKey], ClusterNodes]) -> Selection:
    """The DPU Nodes, by cluster, that get a range of this DPUServiceIPAM's pool."""
    keep = _node_filter(obj)

    def filtered(key: ObjKey) -> ClusterNodes:
        known = cluster_nodes(key)
        if known.nodes is None:
            return known
        return ClusterNodes(known.key, [n for n in known.nodes if keep(n)], known.why_unknown)

    # Only the clusterSelector is handed over: with no set template, `select` takes every Node it is given.
    view: Obj = {"spec": {"clusterSelector": (obj.get("spec") or {}).get("clusterSelector")}}
    return select(view, clusters, filtered, lambda node: True)


def ipam_conditions(
    obj: Obj, sel: Selection, assigned: int, *, problem: str = "", reason: str = REASON_ERROR
) -> list[Condition]:
    """DPUIPAMObjectReconciled and Ready: the pool's ranges are in etcd for every selected Node (`assigned` of
    them), or why not (`problem` with its `reason`, or selected clusters whose Nodes are not known)."""
    gen = generation_of(obj)
    pool = name_of(obj)

    def cond(type_: str, ok: bool, why: str, message: str) -> Condition:
        return Condition(type=type_, status="True" if ok else "False", observedGeneration=gen, reason=why,
                         message=message)  # fmt: skip

    counts = "; ".join(f"DPUCluster {k}: {len(v)} node(s)" for k, v in sel.nodes.items())
    if problem:
        reconciled = cond(COND_RECONCILED, False, reason, problem)
    elif sel.unknown:
        why = "; ".join(f"DPUCluster {k}: {v}" for k, v in sel.unknown.items())
        reconciled = cond(COND_RECONCILED, False, REASON_PENDING, why)
    else:
        reconciled = cond(COND_RECONCILED, True, REASON_SUCCESS,
                          f"pool {pool}: {assigned} node range(s)" + (f" ({counts})" if counts else ""))  # fmt: skip
    if reconciled.status == "True":
        top = cond("Ready", True, REASON_SUCCESS, "")
    else:
        top = cond("Ready", False, reconciled.reason, f"{COND_RECONCILED}: {reconciled.message}")
    return [top, reconciled]
