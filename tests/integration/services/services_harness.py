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
from controller.kube.informer import Informer
from controller.kube.resources import DPUCLUSTERS
from controller.services.resources import APPLICATIONS, DPFOPERATORCONFIGS, DPUSERVICES, SECRETS
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


@dataclass
class ServiceEnv:
    host: KubeApiServer
    kubeconfig: Path
    dpu: dict[str, KubeApiServer]
    work: ServiceWork
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def add_cluster(self, name: str) -> None:
        admin = yaml.safe_dump(self.dpu[name].kubeconfig()).encode()
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
        """What ArgoCD writes once it synced the Application."""
        await self.host.apply_status({"apiVersion": ARGO, "kind": "Application",
                                      "metadata": {"name": app, "namespace": OP_NS},
                                      "status": {"sync": {"status": sync}, "health": {"status": health}}})  # fmt: skip

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
    # What the manager wires: each informer's events to the work's hooks.
    informers["dpuservices"].add_handler(work.on_service)
    informers["applications"].add_handler(work.on_application)
    informers["dpuclusters"].add_handler(work.on_cluster)
    informers["dpuserviceinterfaces"].add_handler(work.on_interface)
    informers["dpfoperatorconfigs"].add_handler(work.on_operator_config)
    informers["secrets"].add_handler(work.on_secret)
    e = ServiceEnv(host, kubeconfig, dpu, work)
    e.tasks = [asyncio.create_task(i.run()) for i in informers.values()]
    for i in informers.values():
        await asyncio.wait_for(i.wait_synced(), 10)
    work.enqueue_all()
    e.tasks.append(asyncio.create_task(work.run()))
    try:
        yield e
    finally:
        work.shut_down()
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
