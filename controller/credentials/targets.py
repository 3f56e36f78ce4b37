"""Where a request's ServiceAccount lives and what its Secret points at: the host cluster, or the DPU cluster
named by spec.targetCluster (its admin client through DpuClusters, its address and CA from its admin
kubeconfig)."""

from __future__ import annotations

from dataclasses import dataclass

from controller.credentials.access import AccessError, ClusterAccess, access_from_admin
from controller.dpucluster import DpuClusterError, DpuClusters
from controller.dpucluster.kubeconfig import KubeconfigError, parse_admin_secret
from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import Informer
from controller.kube.objects import ObjKey
from controller.kube.resources import SECRETS


class ReconcileError(Exception):
    """A step failed; the message is what the condition says after "Error occurred: "."""


@dataclass
class Target:
    """A client on the cluster a ServiceAccount lives in: the host (cluster None) or a DPU cluster."""

    client: KubeClient
    cluster: ObjKey | None = None

    def describe(self) -> str:
        return f"DPUCluster {self.cluster}" if self.cluster is not None else "the host cluster"


class Targets:
    def __init__(
        self,
        host: KubeClient,
        clusters: Informer,
        cluster_access: DpuClusters | None,
        host_access: ClusterAccess | None,
    ) -> None:
        self.host = host
        self.clusters = clusters
        self.access = cluster_access
        self.host_access = host_access

    async def cluster(self, key: ObjKey) -> Target | None:
        """The DPU cluster's admin client; None when the DPUCluster does not exist. Raises ReconcileError."""
        cluster = self.clusters.get(key.namespace, key.name)
        if cluster is None:
            return None
        if self.access is None:
            raise ReconcileError(f"error while getting client for cluster {key.name}: no access to DPU clusters")
        self.access.watch(cluster)
        try:
            return Target(await self.access.admin_client(key), key)
        except DpuClusterError as e:
            raise ReconcileError(f"error while getting client for cluster {key.name}: {e}") from e

    async def target(self, ref: ObjKey | None) -> Target:
        """The host (ref None) or that DPU cluster, which must exist. Raises ReconcileError."""
        if ref is None:
            return Target(self.host)
        target = await self.cluster(ref)
        if target is None:
            raise ReconcileError(
                f'error while getting DPU cluster {ref.name}: dpuclusters.provisioning.dpu.nvidia.com "{ref.name}" '
                "not found"
            )
        return target

    async def access_data(self, ref: ObjKey | None) -> ClusterAccess:
        """The name, address and CA a credential for that cluster carries. Raises ReconcileError."""
        if ref is None:
            if self.host_access is None:
                raise ReconcileError("error while getting CA of the host cluster: the controller was given none")
            return self.host_access
        cluster = self.clusters.get(ref.namespace, ref.name)
        secret_name = str(((cluster or {}).get("spec") or {}).get("kubeconfig") or "")
        where = f"Secret {ref.namespace}/{secret_name}"
        try:
            secret = await self.host.get(SECRETS, ref.namespace, secret_name)
            return access_from_admin(parse_admin_secret(secret, where))
        except (ApiError, KubeconfigError, AccessError) as e:
            raise ReconcileError(f"error while getting kubeconfig for cluster {ref.name}: {e}") from e
