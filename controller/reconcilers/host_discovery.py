"""Host discovery: a "Host" intent for every host dpfd, and its report's labels onto the host's Node.

Each host scans its BlueFields and reports DPF's discovery labels (what DPF's detector and NodeFeatureRule
write). The controller merges them into the Node's labels and removes the discovery labels the host no longer
reports; labels outside DPF's discovery set are never touched, and never taken from a host either.

Hosts stay known while their Node exists even when their dpfd is briefly away (a member key lives on a session
lease): withdrawing their intents would make them drop their BFB caches over a blip.
"""

from __future__ import annotations

import logging
import re

from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import Informer
from controller.kube.objects import Obj, generation_of, labels_of, resource_version_of, uid_of
from controller.kube.resources import NODES
from controller.members import MembersCache
from controller.publish import IntentPublisher
from controller.queue import DONE, Result, WorkQueue, run_workers
from controller.refs import object_ref
from controller.reports import ReportCache
from dpfd.api.intents import Intent, ObjectRef

log = logging.getLogger(__name__)

HOST_KIND = "Host"
CLUSTER_SCOPED = "_"
# DPF's discovery labels: dpu-enabled (NodeFeatureRule), and the detector's per-DPU and bridge features.
DISCOVERY_LABEL = re.compile(
    r"^feature\.node\.kubernetes\.io/dpu-(enabled|oob-bridge-configured|\d+-(pci-address|pf0-name|ps-id))$"
)


def host_ref(node: str) -> ObjectRef:
    return object_ref(HOST_KIND, CLUSTER_SCOPED, node)


def is_discovery_label(key: str) -> bool:
    return DISCOVERY_LABEL.match(key) is not None


def discovery_labels_patch(current: dict[str, str], reported: dict[str, str]) -> dict[str, str | None] | None:
    """The label merge patch taking the Node's discovery labels to `reported` (non-discovery keys in `reported`
    are ignored); None when nothing changes."""
    wanted = {k: v for k, v in reported.items() if is_discovery_label(k) and isinstance(v, str)}
    patch: dict[str, str | None] = {k: None for k in current if is_discovery_label(k) and k not in wanted}
    patch.update({k: v for k, v in wanted.items() if current.get(k) != v})
    return patch or None


class KnownHosts:
    """Which nodes run a host dpfd: the present members in role host, plus nodes already holding a Host intent
    whose Node still exists."""

    def __init__(self, members: MembersCache, nodes: Informer, publisher: IntentPublisher) -> None:
        self.members = members
        self.nodes = nodes
        self.publisher = publisher

    def present(self) -> list[str]:
        return self.members.hosts()

    def all(self) -> list[str]:
        known = set(self.present())
        for ref in self.publisher.sources(HOST_KIND):
            if self.nodes.get("", ref.name) is not None:
                known.add(ref.name)
        return sorted(known)


class HostReconciler:
    """Keeps each host's Host intent, and copies its discovery labels onto the Node. Keyed by node name."""

    def __init__(
        self,
        client: KubeClient,
        nodes: Informer,
        members: MembersCache,
        reports: ReportCache,
        publisher: IntentPublisher,
        hosts: KnownHosts,
    ) -> None:
        self.client = client
        self.nodes = nodes
        self.members = members
        self.reports = reports
        self.publisher = publisher
        self.hosts = hosts
        self.queue: WorkQueue[str] = WorkQueue("host")

    def enqueue_all(self) -> None:
        for node in set(self.hosts.all()) | {r.name for r in self.publisher.sources(HOST_KIND)}:
            self.queue.add(node)

    async def run(self, workers: int = 2) -> None:
        try:
            await run_workers(self.queue, self.reconcile, workers, lambda n: f"Host {n}")
        finally:
            self.queue.shut_down()

    async def reconcile(self, node: str) -> Result:
        ref = host_ref(node)
        obj = self.nodes.get("", node)
        present = self.members.role(node) == "host"
        if not present and obj is None:
            self.publisher.declare(ref, [])  # neither a dpfd nor a Node: the host is gone
            return DONE
        if not present and not self.publisher.intents_of(ref):
            return DONE  # not a host (a DPU's dpfd, or never had one)
        self.publisher.declare(
            ref,
            [
                Intent(
                    node=node,
                    ref=ref,
                    uid=uid_of(obj) if obj is not None else "",
                    generation=generation_of(obj) if obj is not None else 0,
                )
            ],
        )
        if obj is None:
            return DONE
        return await self._merge_labels(node, obj)

    async def _merge_labels(self, node: str, obj: Obj) -> Result:
        report = self.reports.latest(node, host_ref(node))
        if report is None or report.phase != "Ready":
            return DONE
        if report.uid and report.uid != uid_of(obj):
            return DONE  # about another Node of this name
        reported = report.details.get("labels")
        if not isinstance(reported, dict):
            return DONE
        patch = discovery_labels_patch(labels_of(obj), reported)
        if patch is None:
            return DONE
        try:
            await self.client.patch_no_result(
                NODES, "", node, {"metadata": {"labels": patch, "resourceVersion": resource_version_of(obj)}}
            )
        except ApiError as exc:
            if exc.not_found:
                return DONE
            raise  # a conflict: the next Node event brings the fresh object, the retry reads it
        log.info("discovery labels updated", extra={"node": node, "labels": ",".join(sorted(patch))})
        return DONE
