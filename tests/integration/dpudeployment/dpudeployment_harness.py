"""A DPUDeployment work running against the emulated Kubernetes API: the server with DPF's CRDs, a client, the
informers the work reads (fed to its handlers as the manager would) and the work itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest_asyncio

from controller.chains.family import DPUSERVICECHAINS, DPUSERVICEINTERFACES
from controller.dpudeployment.names import DPUDEPLOYMENTS, DPUSERVICECONFIGURATIONS, DPUSERVICES, DPUSERVICETEMPLATES
from controller.dpudeployment.work import DeploymentInformers, DpuDeploymentWork
from controller.kube.client import KubeClient
from controller.kube.informer import Informer
from controller.kube.resources import BFBS, DPUFLAVORS, DPUSETS
from dpfd.api.crds import generate_crds
from dpfd.sim.kubeapi import KubeApiServer


@dataclass
class Env:
    server: KubeApiServer
    work: DpuDeploymentWork


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    server = KubeApiServer()
    await server.start()
    await server.register_crds(generate_crds())
    server.write_kubeconfig(tmp_path / "kubeconfig")
    client = await KubeClient.from_kubeconfig(str(tmp_path / "kubeconfig"))

    def informer(rt: object) -> Informer:
        return Informer(client, rt, resync_period=0)  # type: ignore[arg-type]

    informers = DeploymentInformers(
        deployments=informer(DPUDEPLOYMENTS),
        templates=informer(DPUSERVICETEMPLATES),
        configurations=informer(DPUSERVICECONFIGURATIONS),
        bfbs=informer(BFBS),
        flavors=informer(DPUFLAVORS),
        dpusets=informer(DPUSETS),
        services=informer(DPUSERVICES),
        interfaces=informer(DPUSERVICEINTERFACES),
        chains=informer(DPUSERVICECHAINS),
    )
    work = DpuDeploymentWork(client, informers)
    for inf, handler in work.handlers():
        inf.add_handler(handler)
    every = {id(inf): inf for inf, _ in work.handlers()}.values()
    tasks = [asyncio.create_task(inf.run()) for inf in every]
    for inf in every:
        await asyncio.wait_for(inf.synced.wait(), 10)
    work.enqueue_all()
    runner = asyncio.create_task(work.run())
    try:
        yield Env(server, work)
    finally:
        work.shut_down()
        for t in [runner, *tasks]:
            t.cancel()
        await asyncio.gather(runner, *tasks, return_exceptions=True)
        await client.close()
        await server.stop()
