"""The DPUService work against real components: the emulated host API (DPF's CRDs and the ArgoCD CRD fixtures), two
emulated DPU clusters over TLS reached through DpuClusters, the informers the manager would create, and ServiceWork
running on them. Tests play ArgoCD: they set Applications' status and remove their finalizer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest_asyncio
import yaml

from controller.chains.family import DPUSERVICEINTERFACES
from controller.dpucluster import DpuClusters
from controller.kube.client import KubeClient
from controller.kube.informer import Handler, Informer
from controller.kube.resources import DPUCLUSTERS, SECRETS
from controller.services.resources import APPLICATIONS, DPFOPERATORCONFIGS, DPUSERVICES
from controller.services.work import ServiceWork
from dpfd.api.crds import generate_crds
from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.errors import ApiError as SimApiError
from dpfd.sim.kubeapi.tls import ensure_tls
from tests.fixtures.argocd.crds import argocd_crds

OP_NS = "dpf-operator-system"
PROV = "provisioning.dpu.nvidia.com/v1alpha1"
SVC = "svc.dpu.nvidia.com/v1alpha1"
ARGO = "argoproj.io/v1alpha1"


def start_work(client: KubeClient, informers: dict[str, Informer], access: DpuClusters) -> ServiceWork:
    """A ServiceWork on the informers, wired as the manager wires it (each informer's events to its hooks)."""
    work = ServiceWork(
        client,
        informers["dpuservices"],
        informers["applications"],
        informers["dpuclusters"],
        informers["dpuserviceinterfaces"],
        informers["dpfoperatorconfigs"],
        access,
        deletion_poll=30.0,
    )
    for plural, hook in _hooks(work).items():
        informers[plural].add_handler(hook)
    return work


def _hooks(work: ServiceWork) -> dict[str, Handler]:
    return {"dpuservices": work.on_service, "applications": work.on_application, "dpuclusters": work.on_cluster,
            "dpuserviceinterfaces": work.on_interface, "dpfoperatorconfigs": work.on_operator_config,
            "secrets": work.on_secret}  # fmt: skip


@dataclass
class ServiceEnv:
    host: KubeApiServer
    kubeconfig: Path
    dpu: dict[str, KubeApiServer]
    work: ServiceWork
    client: KubeClient
    informers: dict[str, Informer]
    access: DpuClusters
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    work_task: asyncio.Task[None] | None = None

    def run_work(self) -> None:
        self.work.enqueue_all()
        self.work_task = asyncio.create_task(self.work.run())

    async def stop_work(self) -> None:
        self.work.shut_down()
        if self.work_task is not None:
            self.work_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.work_task

    async def restart_work(self) -> ServiceWork:
        """A controller restart: the running ServiceWork stops and a fresh one (no memory) takes over."""
        for plural, hook in _hooks(self.work).items():
            self.informers[plural].remove_handler(hook)
        await self.stop_work()
        self.work = start_work(self.client, self.informers, self.access)
        self.run_work()
        return self.work

    async def add_cluster(self, name: str, server: str | None = None) -> None:
        """A static DPUCluster `name` whose admin kubeconfig reaches the emulated DPU cluster `server` (default:
        the one named `name`; several DPUClusters may share one)."""
        admin = yaml.safe_dump(self.dpu[server or name].kubeconfig()).encode()
        await self.host.apply_object(
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-admin", "namespace": OP_NS},
             "data": {"admin.conf": base64.b64encode(admin).decode()}}
        )  # fmt: skip
        await self.host.apply_object(
            {"apiVersion": PROV, "kind": "DPUCluster", "metadata": {"name": name, "namespace": OP_NS},
             "spec": {"type": "static", "version": "v1.30.0", "kubeconfig": f"{name}-admin"}}
        )  # fmt: skip

    def app(self, name: str) -> dict[str, Any] | None:
        return self.host.get_object(ARGO, "Application", name, OP_NS)

    def apps(self) -> list[dict[str, Any]]:
        return self.host.objects(ARGO, "Application", OP_NS)

    def service(self, name: str, namespace: str) -> dict[str, Any] | None:
        return self.host.get_object(SVC, "DPUService", name, namespace)

    def condition(self, name: str, namespace: str, type_: str) -> dict[str, Any]:
        status = (self.service(name, namespace) or {}).get("status") or {}
        return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})

    async def argocd_reports(self, app: str, sync: str, health: str) -> None:
        """What ArgoCD writes once it compared the Application's current source with what runs (comparedTo)."""
        source = ((self.app(app) or {}).get("spec") or {}).get("source")
        sync_status = {"status": sync, "comparedTo": {"source": source}}
        await self.host.apply_status({"apiVersion": ARGO, "kind": "Application",
                                      "metadata": {"name": app, "namespace": OP_NS},
                                      "status": {"sync": sync_status, "health": {"status": health}}})  # fmt: skip

    async def argocd_finishes_deletion(self, app: str) -> None:
        """ArgoCD pruned what the Application deployed: it drops its finalizer."""
        await self.host.apply_object({"apiVersion": ARGO, "kind": "Application",
                                      "metadata": {"name": app, "namespace": OP_NS, "finalizers": []}})  # fmt: skip


def in_cluster(server: KubeApiServer, api_version: str, kind: str, name: str, ns: str | None) -> dict[str, Any] | None:
    try:
        return server.get_object(api_version, kind, name, ns)
    except SimApiError as exc:
        if exc.code == 404:
            return None
        raise


def operator_config() -> dict[str, Any]:
    return {"apiVersion": "operator.dpu.nvidia.com/v1alpha1", "kind": "DPFOperatorConfig",
            "metadata": {"name": "dpfoperatorconfig", "namespace": OP_NS},
            "spec": {"provisioningController": {"bfbPVCName": "bfb-pvc"}}}  # fmt: skip


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[ServiceEnv]:
    host = KubeApiServer(bookmark_interval=0.2)
    await host.start()
    await host.register_crds(generate_crds() + argocd_crds())
    kubeconfig = tmp_path / "host.conf"
    host.write_kubeconfig(kubeconfig)
    dpu = {name: KubeApiServer(tls=ensure_tls(tmp_path / f"pki-{name}"), bookmark_interval=0.2)
           for name in ("dc1", "dc2")}  # fmt: skip
    for server in dpu.values():
        await server.start()
    client = await KubeClient.from_kubeconfig(str(kubeconfig))
    access = DpuClusters(client)
    informers = {rt.plural: Informer(client, rt, resync_period=0)
                 for rt in (DPUSERVICES, APPLICATIONS, DPUCLUSTERS, DPUSERVICEINTERFACES, DPFOPERATORCONFIGS, SECRETS)}  # fmt: skip
    e = ServiceEnv(host, kubeconfig, dpu, start_work(client, informers, access), client, informers, access)
    e.tasks = [asyncio.create_task(i.run()) for i in informers.values()]
    for i in informers.values():
        await asyncio.wait_for(i.wait_synced(), 10)
    e.run_work()
    try:
        yield e
    finally:
        await e.stop_work()
        for t in e.tasks:
            t.cancel()
        for t in e.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await access.close()
        await client.close()
        for server in dpu.values():
            await server.stop()
        await host.stop()
