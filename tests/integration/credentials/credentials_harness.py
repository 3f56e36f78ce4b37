"""Shared pieces of the credential tests: the environment (a host API and a DPU cluster API, emulated, DPF's CRDs
on the host, a CredentialWork with its informers against them), a fake clock, request builders and readers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from controller.credentials import CredentialWork, host_access_from_kubeconfig
from controller.credentials.resources import CREDENTIAL_REQUESTS
from controller.dpucluster import DpuClusters
from controller.kube.client import KubeClient
from controller.kube.informer import Informer
from controller.kube.objects import key_of
from controller.kube.resources import DPUCLUSTERS
from dpfd.api.crds import generate_crds
from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.tls import ensure_tls

NS = "dpf-operator-system"
SVC = "svc.dpu.nvidia.com/v1alpha1"
PROV = "provisioning.dpu.nvidia.com/v1alpha1"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Env:
    host: KubeApiServer
    dpu: KubeApiServer
    host_conf: Path
    client: KubeClient
    access: DpuClusters
    requests: Informer
    clusters: Informer
    tmp: Path
    works: list[CredentialWork] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def make_work(self, **kw: Any) -> CredentialWork:
        work = CredentialWork(
            self.client, self.requests, self.clusters, self.access, host_access_from_kubeconfig(self.host_conf), **kw
        )
        self.requests.add_handler(work.on_object)
        self.clusters.add_handler(work.on_cluster)
        self.works.append(work)
        return work

    def start(self, work: CredentialWork) -> None:
        self.tasks.append(asyncio.create_task(work.run()))

    def request(self, name: str) -> dict[str, Any] | None:
        return self.host.get_object(SVC, "DPUServiceCredentialRequest", name, NS)

    def secret(self, name: str, namespace: str = NS) -> dict[str, Any] | None:
        return self.host.get_object("v1", "Secret", name, namespace)

    async def add_dpu_cluster(self, name: str = "dpu-cplane") -> None:
        admin = yaml.safe_dump(self.dpu.kubeconfig(context="dpu-cplane-admin")).encode()
        await self.host.apply_object({"apiVersion": "v1", "kind": "Secret",
                                      "metadata": {"name": f"{name}-admin-kubeconfig", "namespace": NS},
                                      "data": {"admin.conf": base64.b64encode(admin).decode()}})  # fmt: skip
        await self.host.apply_object({"apiVersion": PROV, "kind": "DPUCluster",
                                      "metadata": {"name": name, "namespace": NS},
                                      "spec": {"type": "static", "version": "v1.30.0",
                                               "kubeconfig": f"{name}-admin-kubeconfig"}})  # fmt: skip


def credential_request(
    name: str,
    *,
    sa: str = "ovn-dpu",
    sa_namespace: str | None = NS,
    secret: str = "ovn-dpu-credentials",
    kind: str = "kubeconfig",
    duration: str | None = "10m",
    target: str | None = None,
    labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccount": {"name": sa, **({"namespace": sa_namespace} if sa_namespace else {})},
        "type": kind,
        "secret": {"name": secret, "namespace": NS},
    }
    if duration is not None:
        spec["duration"] = duration
    if target is not None:
        spec["targetCluster"] = {"name": target, "namespace": NS}
    if labels is not None:
        spec["metadata"] = {"labels": labels, "annotations": {"team": "networking"}}
    return {"apiVersion": SVC, "kind": "DPUServiceCredentialRequest",
            "metadata": {"name": name, "namespace": NS}, "spec": spec}  # fmt: skip


def secret_values(secret: dict[str, Any] | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in ((secret or {}).get("data") or {}).items()}


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


Kubectl = Callable[..., Any]


@contextlib.asynccontextmanager
async def running_env(tmp_path: Path, *, host_tls: bool) -> AsyncIterator[Env]:
    host = KubeApiServer(tls=ensure_tls(tmp_path / "host-pki") if host_tls else None, bookmark_interval=0.2)
    dpu = KubeApiServer(tls=ensure_tls(tmp_path / "dpu-pki"), bookmark_interval=0.2)
    await host.start()
    await dpu.start()
    await host.register_crds(generate_crds())
    host_conf = tmp_path / "host.conf"
    host.write_kubeconfig(host_conf)
    client = await KubeClient.from_kubeconfig(str(host_conf))
    access = DpuClusters(client)
    requests = Informer(client, CREDENTIAL_REQUESTS, resync_period=300)
    clusters = Informer(client, DPUCLUSTERS, resync_period=300)

    def on_cluster(event: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        if event == "DELETED":
            access.forget(key_of(obj))
        else:
            access.watch(obj)

    clusters.add_handler(on_cluster)  # as the manager keeps DPU-cluster access
    e = Env(host, dpu, host_conf, client, access, requests, clusters, tmp_path)
    e.tasks += [asyncio.create_task(requests.run()), asyncio.create_task(clusters.run())]
    try:
        await requests.wait_synced()
        await clusters.wait_synced()
        yield e
    finally:
        for work in e.works:
            work.shut_down()
        for task in e.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await access.close()
        await client.close()
        await dpu.stop()
        await host.stop()
