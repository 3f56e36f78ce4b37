"""Fixtures for the emulated Kubernetes API: a started server, a kubeconfig, a kubernetes-asyncio client,
and a runner for the real kubectl."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubeapi_harness import DPU_CRD, AcceptAll
from kubernetes_asyncio import client, config

from dpfd.sim.kubeapi import KubeApiServer


@pytest.fixture
async def kubeapi() -> AsyncIterator[KubeApiServer]:
    server = KubeApiServer(validation=AcceptAll(), bookmark_interval=0.2)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def with_dpu_crd(kubeapi: KubeApiServer) -> KubeApiServer:
    await kubeapi.register_crds([DPU_CRD])
    return kubeapi


@pytest.fixture
def kubeconfig(kubeapi: KubeApiServer, tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    kubeapi.write_kubeconfig(path)
    return path


@pytest.fixture
async def api(kubeconfig: Path) -> AsyncIterator[client.ApiClient]:
    api_client = await config.new_client_from_config(config_file=str(kubeconfig))
    yield api_client
    await api_client.close()


@dataclass
class Result:
    rc: int
    out: str
    err: str


Kubectl = Callable[..., Awaitable[Result]]


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Kubectl:
    """Run the real kubectl against the server (asynchronously, so the in-process server keeps serving)."""
    env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "kube-cache"), "HOME": str(tmp_path)}

    async def run(*args: str, stdin: str | None = None, check: bool = True) -> Result:
        pipe = asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(
            "kubectl", "--kubeconfig", str(kubeconfig), *args, stdin=pipe, stdout=pipe, stderr=pipe, env=env
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin.encode() if stdin else None), timeout=30)
        result = Result(proc.returncode or 0, out.decode(), err.decode())
        if check and result.rc != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.rc}): {result.err}")
        return result

    return run
