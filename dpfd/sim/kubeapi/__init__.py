"""An emulated Kubernetes API server (aiohttp) for dpf-sim and the tests: kubectl and kubernetes-asyncio work
against it. See server.KubeApiServer."""

from dpfd.sim.kubeapi.admission import ValidationHooks
from dpfd.sim.kubeapi.server import KubeApiServer

__all__ = ["KubeApiServer", "ValidationHooks"]
