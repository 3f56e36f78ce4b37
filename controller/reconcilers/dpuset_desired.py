"""What a DPUSet wants: the DPU objects DPF's DPUSet controller would create, as pure functions.

Mirrors internal/provisioning/controllers/dpuset (v24.10): one DPU per selected host Node and DPU index,
named `<lowercased node>-<pci address label>`, labelled with the DPUSet and the device, owned by the DPUSet.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from controller.kube.objects import (
    Obj,
    controller_owner_ref,
    labels_of,
    meta,
    name_of,
    namespace_of,
)
from controller.kube.resources import DPUS, DPUSETS
from dpfd.api.meta import LabelSelector, selector_matches

NFD_PREFIX = "feature.node.kubernetes.io/"
DPUSET_NAME_LABEL = "provisioning.dpu.nvidia.com/dpuset-name"
DPUSET_NAMESPACE_LABEL = "provisioning.dpu.nvidia.com/dpuset-namespace"
DPU_PCI_ADDRESS_LABEL = "provisioning.dpu.nvidia.com/dpu-pciAddress"
DPU_PF_NAME_LABEL = "provisioning.dpu.nvidia.com/dpu-pf-name"
DPU_HOST_IP_LABEL = "provisioning.dpu.nvidia.com/dpu-host-ip"
DPU_FINALIZER = "provisioning.dpu.nvidia.com/dpu-protection"
DPUSET_FINALIZER = "provisioning.dpu.nvidia.com/dpuset-protection"

_INDEXED_KEY = re.compile(r"^feature\.node\.kubernetes\.io/dpu-(\d+)-.*$")


def pci_address_label(index: int) -> str:
    return f"{NFD_PREFIX}dpu-{index}-pci-address"


def pf0_name_label(index: int) -> str:
    return f"{NFD_PREFIX}dpu-{index}-pf0-name"


def dpu_indexes(dpu_selector: dict[str, str] | None, node_labels: dict[str, str]) -> list[int]:
    """DPU indexes on a node that a DPUSet's dpuSelector picks (DPF's getDPUIndexFromSelector).

    Every selector entry the node's labels satisfy whose key is `feature.node.kubernetes.io/dpu-<N>-…`
    picks index N. An empty selector picks index 0 when the node has DPU 0's pci-address label.
    """
    if not dpu_selector:
        return [0] if pci_address_label(0) in node_labels else []
    picked: set[int] = set()
    for key, value in dpu_selector.items():
        if node_labels.get(key) != value:
            continue
        m = _INDEXED_KEY.match(key)
        if m:
            picked.add(int(m.group(1)))
    return sorted(picked)


def node_internal_ip(node: Obj) -> str | None:
    for addr in (node.get("status") or {}).get("addresses") or []:
        if addr.get("type") == "InternalIP":
            return str(addr.get("address", ""))
    return None


def dpu_name(node_name: str, pci_address: str) -> str:
    return f"{node_name.lower()}-{pci_address}"


def owned_by_dpuset_labels(dpuset: Obj) -> dict[str, str]:
    """The labels that tie a DPU to its DPUSet (DPF lists a DPUSet's DPUs by them)."""
    return {DPUSET_NAME_LABEL: name_of(dpuset), DPUSET_NAMESPACE_LABEL: namespace_of(dpuset)}


def dpuset_index_value(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def dpuset_of_dpu(dpu: Obj) -> str | None:
    """`namespace/name` of the DPUSet a DPU belongs to, from its labels."""
    labels = meta(dpu).get("labels") or {}  # read only: no copy (this runs for every DPU event)
    name = labels.get(DPUSET_NAME_LABEL)
    if not name:
        return None
    return dpuset_index_value(labels.get(DPUSET_NAMESPACE_LABEL) or namespace_of(dpu), name)


def _missing_pci(node_name: str, index: int) -> str:
    return f"Node {node_name}: label {pci_address_label(index)} is missing or empty; cannot create DPU index {index}"


def desired_dpu(dpuset: Obj, node: Obj, index: int) -> Obj:
    """The DPU for DPU `index` on `node`. Raises ValueError naming the node and label when one is missing."""
    node_name = name_of(node)
    node_labels = labels_of(node)
    pci = node_labels.get(pci_address_label(index), "")
    if not pci:
        raise ValueError(_missing_pci(node_name, index))
    template = (dpuset.get("spec") or {}).get("dpuTemplate") or {}
    tspec: dict[str, Any] = template.get("spec") or {}

    labels = labels_of(dpuset)
    labels.update(owned_by_dpuset_labels(dpuset))
    labels[DPU_PCI_ADDRESS_LABEL] = pci
    pf_name = node_labels.get(pf0_name_label(index))
    if pf_name:
        labels[DPU_PF_NAME_LABEL] = pf_name
    host_ip = node_internal_ip(node)
    if host_ip:
        labels[DPU_HOST_IP_LABEL] = host_ip

    cluster = copy.deepcopy(tspec.get("cluster") or {})
    cluster.setdefault("nodeLabels", {})
    spec: dict[str, Any] = {
        "nodeName": node_name,
        "bfb": str((tspec.get("bfb") or {}).get("name", "")),
        "pciAddress": pci,
        "cluster": cluster,
        "automaticNodeReboot": bool(tspec.get("automaticNodeReboot", True)),
    }
    if tspec.get("nodeEffect") is not None:
        spec["nodeEffect"] = copy.deepcopy(tspec["nodeEffect"])
    if tspec.get("dpuFlavor"):
        spec["dpuFlavor"] = tspec["dpuFlavor"]

    return {
        "apiVersion": DPUS.api_version,
        "kind": DPUS.kind,
        "metadata": {
            "name": dpu_name(node_name, pci),
            "namespace": namespace_of(dpuset),
            "labels": labels,
            "annotations": dict(template.get("annotations") or {}),
            "ownerReferences": [controller_owner_ref(dpuset, DPUSETS.api_version, DPUSETS.kind)],
            "finalizers": [DPU_FINALIZER],
        },
        "spec": spec,
    }


def node_selector(dpuset: Obj) -> LabelSelector | None:
    """The DPUSet's spec.nodeSelector, parsed once. Raises ValueError naming the DPUSet if it is malformed."""
    raw = (dpuset.get("spec") or {}).get("nodeSelector")
    if raw is None:
        return None
    try:
        return LabelSelector.model_validate(raw)
    except ValueError as exc:
        raise ValueError(
            f"DPUSet {namespace_of(dpuset)}/{name_of(dpuset)}: spec.nodeSelector is invalid: {exc}"
        ) from exc


@dataclass(frozen=True)
class Placement:
    """Where one wanted DPU lives: the cheap part of a desired DPU (its name), built for every node."""

    name: str
    node: Obj
    index: int


def desired_placements(dpuset: Obj, nodes: Iterable[Obj], problems: list[str] | None = None) -> dict[str, Placement]:
    """The DPUs the DPUSet wants, by name, without building the objects (see `desired_dpu`).

    Nodes that are selected but lack the PCI address label of a picked index go to `problems`.
    """
    dpu_selector = (dpuset.get("spec") or {}).get("dpuSelector") or {}
    selector = node_selector(dpuset)
    out: dict[str, Placement] = {}
    for node in nodes:
        node_labels = (node.get("metadata") or {}).get("labels") or {}
        if not selector_matches(selector, node_labels):
            continue
        for index in dpu_indexes(dpu_selector, node_labels):
            pci = node_labels.get(pci_address_label(index), "")
            if not pci:
                if problems is not None:
                    problems.append(_missing_pci(name_of(node), index))
                continue
            name = dpu_name(name_of(node), pci)
            out[name] = Placement(name, node, index)
    return out


def desired_dpus(dpuset: Obj, nodes: Iterable[Obj], problems: list[str] | None = None) -> list[Obj]:
    """Every DPU the DPUSet wants, sorted by name. Nodes it cannot build a DPU for go to `problems`."""
    placements = desired_placements(dpuset, nodes, problems)
    return [desired_dpu(dpuset, placements[n].node, placements[n].index) for n in sorted(placements)]


def node_labels_patch(dpuset: Obj, dpu: Obj) -> Obj | None:
    """A merge patch carrying template `cluster.nodeLabels` the DPU lacks or has with another value.

    DPF merges (never removes) these labels into existing DPUs.
    """
    tspec = ((dpuset.get("spec") or {}).get("dpuTemplate") or {}).get("spec") or {}
    wanted: dict[str, str] = (tspec.get("cluster") or {}).get("nodeLabels") or {}
    have: dict[str, str] = ((dpu.get("spec") or {}).get("cluster") or {}).get("nodeLabels") or {}
    changed = {k: v for k, v in wanted.items() if have.get(k) != v}
    if not changed:
        return None
    return {"spec": {"cluster": {"nodeLabels": changed}}}


def outdated(dpuset: Obj, dpu: Obj) -> bool:
    """DPF's notion of an outdated DPU (BFB or flavor differs from the template).

    The seam for rolling updates: a RollingUpdate strategy will delete outdated DPUs within the
    maxUnavailable budget; for now nothing acts on it.
    """
    tspec = ((dpuset.get("spec") or {}).get("dpuTemplate") or {}).get("spec") or {}
    spec = dpu.get("spec") or {}
    return bool(
        spec.get("bfb") != (tspec.get("bfb") or {}).get("name") or spec.get("dpuFlavor") != tspec.get("dpuFlavor")
    )


def dpu_statistics(dpus: Iterable[Obj]) -> dict[str, int]:
    """DPUSet status.dpuStatistics: DPUs per phase; a DPU without a phase yet counts as Initializing."""
    stats: dict[str, int] = {}
    for dpu in dpus:
        phase = str((dpu.get("status") or {}).get("phase") or "Initializing")
        stats[phase] = stats.get(phase, 0) + 1
    return stats
