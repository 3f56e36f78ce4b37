"""One leadership term's DPUServiceCredentialRequest work: a queue of requests fed by the request and DPUCluster
informers, reconciled by CredentialReconciler (reconciler.py), each requeued for its token's renewal."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from controller.credentials.access import ClusterAccess
from controller.credentials.reconciler import KIND, CredentialReconciler
from controller.credentials.refs import ref_string
from controller.credentials.targets import Targets
from controller.dpucluster import DpuClusters
from controller.kube.client import KubeClient
from controller.kube.informer import EventType, Handler, Informer
from controller.kube.objects import Obj, ObjKey, key_of
from controller.object_work import ObjectWork
from controller.queue import Result
from controller.reconcilers.provisioning import status_only_change


class CredentialWork(ObjectWork):
    def __init__(
        self,
        client: KubeClient,
        informer: Informer,
        clusters: Informer,
        cluster_access: DpuClusters | None,
        host_access: ClusterAccess | None,
        *,
        workers: int = 2,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """`client` is the host cluster's; `informer` watches DPUServiceCredentialRequests and `clusters`
        DPUClusters; `host_access` is the host cluster's name, address and CA for the Secrets of requests without
        a target (None: those fail with SecretReconciled False); `clock` and `jitter` (a draw from [0, 1)) drive
        renewal."""
        self.informer = informer
        self.clusters = clusters
        self.reconciler = CredentialReconciler(
            client, Targets(client, clusters, cluster_access, host_access), clock, jitter
        )
        super().__init__(KIND, workers)

    @property
    def tokens_issued(self) -> int:
        return self.reconciler.tokens_issued

    async def reconcile(self, key: ObjKey) -> Result:
        return await self.reconciler.reconcile(key, self.informer.get(key.namespace, key.name))

    # -- cache events -------------------------------------------------------------------------------
    def on_object(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        if event == "MODIFIED" and status_only_change(old, obj):
            return  # our own status write
        self.queue.add(key_of(obj))

    def on_cluster(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        """A DPUCluster came, changed or went: the requests that target it (or did) try again."""
        cluster = str(key_of(obj))
        for request in self.informer.list():
            wanted = ref_string((request.get("spec") or {}).get("targetCluster"))
            if cluster in (wanted, (request.get("status") or {}).get("targetCluster")):
                self.queue.add(key_of(request))

    def handlers(self) -> list[tuple[Informer, Handler]]:
        """Which cache feeds which handler (what the manager forwards while this term leads)."""
        return [(self.informer, self.on_object), (self.clusters, self.on_cluster)]

    def enqueue_all(self) -> None:
        for key in self.informer.list_keys():
            self.queue.add(key)
