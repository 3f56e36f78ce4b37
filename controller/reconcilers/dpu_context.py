"""A DPU intent's `context`: what the controller resolves for the host's dpfd beyond the DPU object itself.

`dpu_context` is a pure function of the objects the DPU names (its BFB, flavor, DPU cluster, host Node) and the
controller's answers (node effect, the DPU's Node Ready in its cluster, the cluster's join command). Absent keys
mean "not known yet". `ContextSource` gathers those inputs from the informer caches and the answer tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from controller.kube.informer import Informer
from controller.kube.objects import Obj, ObjKey, annotations_of, name_of, namespace_of
from controller.nodeeffect import ANNOTATION as NODE_EFFECT_ANNOTATION
from dpfd.api.defaults import apply_defaults
from dpfd.api.jsontree import copy_json
from dpfd.api.provisioning import API_VERSION

# The flavor's nvconfig parameter DPF's hostnetwork pod reads for the host's VF count (dpf-api-notes §5).
_NUM_OF_VFS = re.compile(r"^NUM_OF_VFS=(\d+)$")


def _stored(obj: Obj, kind: str) -> Obj:
    """`obj` with DPF's defaults (list items may lack apiVersion and kind, which defaulting goes by)."""
    return apply_defaults({**obj, "apiVersion": API_VERSION, "kind": kind})


class ContextHooks(Protocol):
    """What the DPU reconciler asks of the context work (context_work.ContextWork)."""

    def context_of(self, dpu: Obj) -> dict[str, Any]: ...

    async def assign_cluster(self, dpu: Obj) -> None: ...

    async def release(self, dpu: Obj) -> None:
        """The DPU is going away for good: remove what it left outside the host cluster (its DPU-cluster Node)."""
        ...


def bfb_context(bfb: Obj) -> dict[str, Any]:
    """The BFB as the host needs it: name, url, fileName (DPF's webhook default applied), phase."""
    stored = _stored(bfb, "BFB")
    spec = stored.get("spec") or {}
    return {
        "name": name_of(bfb),
        "url": str(spec.get("url") or ""),
        "fileName": str(spec.get("fileName") or ""),
        "phase": str((bfb.get("status") or {}).get("phase") or "Initializing"),
    }


def flavor_context(flavor: Obj) -> dict[str, Any]:
    """The DPUFlavor's spec with CRD defaults applied."""
    spec = _stored(flavor, "DPUFlavor").get("spec") or {}
    return dict(spec)


def num_vfs_of(flavor_spec: dict[str, Any]) -> int | None:
    """NUM_OF_VFS from the flavor's nvconfig parameters (DPF's hostnetwork `num_of_vfs`), when set."""
    for entry in flavor_spec.get("nvconfig") or []:
        for param in (entry or {}).get("parameters") or []:
            m = _NUM_OF_VFS.match(str(param))
            if m:
                return int(m.group(1))
    return None


def cluster_ref_of(dpu: Obj) -> ObjKey | None:
    """The DPUCluster the DPU is assigned to (spec.cluster name, namespace defaulting to the DPU's)."""
    cluster = (dpu.get("spec") or {}).get("cluster") or {}
    name = str(cluster.get("name") or "")
    if not name:
        return None
    return ObjKey(str(cluster.get("namespace") or namespace_of(dpu)), name)


def host_annotations(node: Obj) -> dict[str, str]:
    """The host Node's annotations, without the controller's own node-effect record (it changes with every
    apply and revert, and the host has no use for it)."""
    return {k: v for k, v in annotations_of(node).items() if k != NODE_EFFECT_ANNOTATION}


def dpu_context(
    dpu: Obj,
    *,
    bfb: Obj | None = None,
    flavor: Obj | None = None,
    join_command: str | None = None,
    host: Obj | None = None,
    node_effect: dict[str, Any] | None = None,
    cluster_node_ready: bool | None = None,
) -> dict[str, Any]:
    """The intent context of `dpu` from what the controller knows; each input None means "not known yet"."""
    ctx: dict[str, Any] = {}
    if bfb is not None:
        ctx["bfb"] = bfb_context(bfb)
    if flavor is not None:
        spec = flavor_context(flavor)
        ctx["flavor"] = spec
        num_vfs = num_vfs_of(spec)
        if num_vfs is not None:
            ctx["numVFs"] = num_vfs
    cluster = cluster_ref_of(dpu)
    if cluster is not None:
        ctx["cluster"] = {"name": cluster.name, "namespace": cluster.namespace}
        if join_command:
            ctx["cluster"]["joinCommand"] = join_command
    if node_effect is not None:
        ctx["nodeEffect"] = copy_json(node_effect)
    if cluster_node_ready is not None:
        ctx["clusterNodeReady"] = cluster_node_ready
    if host is not None:
        ctx["hostAnnotations"] = host_annotations(host)
    return ctx


@dataclass
class Answers:
    """The controller's answers to a DPU's host, by DPU key: kept by the workers that produce them."""

    node_effect: dict[ObjKey, dict[str, Any]] = field(default_factory=dict)
    cluster_node_ready: dict[ObjKey, bool] = field(default_factory=dict)
    join_commands: dict[ObjKey, str] = field(default_factory=dict)  # by DPUCluster key

    def forget_dpu(self, key: ObjKey) -> None:
        self.node_effect.pop(key, None)
        self.cluster_node_ready.pop(key, None)


@dataclass
class ContextSource:
    """Reads a DPU's context inputs from the caches and answer tables."""

    nodes: Informer
    bfbs: Informer
    flavors: Informer
    answers: Answers
    on_missing_join: Callable[[ObjKey], None] = lambda _k: None  # asks for a cluster's join command

    def context_of(self, dpu: Obj) -> dict[str, Any]:
        ns = namespace_of(dpu)
        spec = dpu.get("spec") or {}
        key = ObjKey(ns, name_of(dpu))
        cluster = cluster_ref_of(dpu)
        join = None
        if cluster is not None:
            join = self.answers.join_commands.get(cluster)
            if join is None:
                self.on_missing_join(cluster)
        node = str(spec.get("nodeName") or "")
        return dpu_context(
            dpu,
            bfb=self.bfbs.get(ns, str(spec.get("bfb") or "")),
            flavor=self.flavors.get(ns, str(spec.get("dpuFlavor") or "")),
            join_command=join,
            host=self.nodes.get("", node) if node else None,
            node_effect=self.answers.node_effect.get(key),
            cluster_node_ready=self.answers.cluster_node_ready.get(key),
        )
