"""Fixtures for DPU-cluster access: the emulated API over TLS (in-process and as the process dpf-sim runs),
bootstrap-token Secrets, and runners for the real kubectl and the emulated kubeadm."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.tls import ServerTls, ensure_tls
from dpfd.sim.ports import free_port

REPO = Path(__file__).parents[3]


@dataclass
class Result:
    rc: int
    out: str
    err: str


Run = Callable[..., Awaitable[Result]]


async def run_command(*argv: str, env: dict[str, str] | None = None, limit: float = 60) -> Result:
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(*argv, stdout=pipe, stderr=pipe, env=env, cwd=REPO)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout=limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Result(proc.returncode or 0, out.decode(), err.decode())


def token_secret(
    token_id: str, secret: str, *, expires_in: float = 3600, auth: bool = True, signing: bool = True
) -> dict[str, Any]:
    """A bootstrap-token Secret as `kubeadm token create` writes it."""
    expiration = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {
        "token-id": token_id,
        "token-secret": secret,
        "expiration": expiration,
        "usage-bootstrap-authentication": "true" if auth else "false",
        "usage-bootstrap-signing": "true" if signing else "false",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


@pytest.fixture
def pki(tmp_path: Path) -> ServerTls:
    return ensure_tls(tmp_path / "pki")


@pytest.fixture
async def tls_kubeapi(pki: ServerTls) -> AsyncIterator[KubeApiServer]:
    server = KubeApiServer(tls=pki, bookmark_interval=0.2)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
def tls_kubeconfig(tls_kubeapi: KubeApiServer, tmp_path: Path) -> Path:
    path = tmp_path / "admin.conf"
    tls_kubeapi.write_kubeconfig(path)
    return path


@pytest.fixture
def kubectl(tmp_path: Path) -> Run:
    """The real kubectl with a given kubeconfig (asynchronously, so an in-process server keeps serving)."""
    env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "kube-cache"), "HOME": str(tmp_path)}

    async def run(kubeconfig: Path, *args: str, check: bool = True) -> Result:
        result = await run_command("kubectl", "--kubeconfig", str(kubeconfig), *args, env=env, limit=30)
        if check and result.rc != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.rc}): {result.err}")
        return result

    return run


@pytest.fixture
def kubeadm() -> Run:
    """The emulated kubeadm as a process, as the DPU's dpfd runs it."""

    async def run(*args: str) -> Result:
        return await run_command(sys.executable, "-m", "dpfd.sim.kubeadm", *args, limit=60)

    return run


@dataclass
class KubeApiProcess:
    url: str
    kubeconfig: Path
    tls_dir: Path
    proc: asyncio.subprocess.Process

    @property
    def endpoint(self) -> str:
        return self.url.removeprefix("https://")


async def start_kubeapi_process(tmp_path: Path, tls_dir: Path, port: int | None = None) -> KubeApiProcess:
    port = port or free_port()
    kubeconfig = tmp_path / f"admin-{port}.conf"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dpfd.sim.kubeapi", "--port", str(port), "--kubeconfig", str(kubeconfig),
        "--tls-dir", str(tls_dir), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    assert url == f"https://127.0.0.1:{port}", url
    return KubeApiProcess(url, kubeconfig, tls_dir, proc)


async def stop_kubeapi_process(api: KubeApiProcess) -> int:
    if api.proc.returncode is None:
        api.proc.send_signal(signal.SIGTERM)
    return await asyncio.wait_for(api.proc.wait(), 20)


@pytest.fixture
async def kubeapi_process(tmp_path: Path) -> AsyncIterator[KubeApiProcess]:
    api = await start_kubeapi_process(tmp_path, tmp_path / "pki")
    yield api
    await stop_kubeapi_process(api)
