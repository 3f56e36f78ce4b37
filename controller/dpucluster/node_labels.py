"""Which DPU-cluster Node events matter to selectors: a Node appearing, going, or changing labels; not the status
heartbeats that make most of its events."""

from __future__ import annotations

from typing import Protocol

from controller.kube.objects import Obj, ObjKey, labels_of


class NodeSource(Protocol):
    def node(self, cluster_key: ObjKey, node: str) -> Obj | None: ...


class NodeLabelChanges:
    """Remembers the labels selection last saw per DPU-cluster Node."""

    def __init__(self, source: NodeSource | None) -> None:
        self.source = source
        self._seen: dict[tuple[ObjKey, str], dict[str, str]] = {}

    def changed(self, cluster: ObjKey, node: str) -> bool:
        """True if Node `node` of `cluster` appeared, went or changed labels since the last call for it."""
        obj = self.source.node(cluster, node) if self.source is not None else None
        labels = labels_of(obj) if obj is not None else None
        mark = (cluster, node)
        if labels is None:
            return self._seen.pop(mark, None) is not None
        if self._seen.get(mark) == labels:
            return False
        self._seen[mark] = labels
        return True
