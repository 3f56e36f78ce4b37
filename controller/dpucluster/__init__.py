"""Access to DPU clusters: join commands with bootstrap tokens, DPU Node readiness and labels, DPUCluster status."""

from controller.dpucluster.clusters import DpuClusterError, DpuClusters, NodeHandler
from controller.dpucluster.status import DpuClusterStatusReconciler

__all__ = ["DpuClusterError", "DpuClusterStatusReconciler", "DpuClusters", "NodeHandler"]
