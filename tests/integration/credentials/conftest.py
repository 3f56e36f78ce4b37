"""Fixtures of the credential tests: the environment over TLS (tokens checked) or with a plain-HTTP host (as
dpf-sim runs it), and the real kubectl."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from credentials_harness import Env, Kubectl, running_env


@pytest.fixture
def kubectl(tmp_path: Path) -> Kubectl:
    env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "kube-cache"), "HOME": str(tmp_path)}

    async def run(kubeconfig: Path, *args: str) -> tuple[int, str, str]:
        pipe = asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(
            "kubectl", "--kubeconfig", str(kubeconfig), *args, stdout=pipe, stderr=pipe, env=env
        )
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        return proc.returncode or 0, out.decode(), err.decode()

    return run


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    """The host API over TLS, as a real cluster (tokens checked)."""
    async with running_env(tmp_path, host_tls=True) as e:
        yield e


@pytest.fixture
async def plain_env(tmp_path: Path) -> AsyncIterator[Env]:
    """The host API over plain HTTP, as dpf-sim runs it."""
    async with running_env(tmp_path, host_tls=False) as e:
        yield e
