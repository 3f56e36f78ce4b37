"""Store test fixtures: a Store on the session etcd, a private etcd for destructive tests, helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from dpfd.sim.etcd import EtcdCluster
from tests import waiting


@pytest.fixture
def etcd_private(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A single member of our own, for tests that kill etcd (the session one is shared)."""
    cluster = EtcdCluster(tmp_path / "etcd1", size=1)
    cluster.start()
    yield cluster
    cluster.stop()


Eventually = Callable[[Callable[[], Awaitable[bool]], float, str], Awaitable[None]]
Etcdctl = Callable[..., Awaitable[bytes]]


async def _eventually(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    await waiting.eventually(check, within, what)


async def _etcdctl(endpoint: str, *args: str) -> bytes:
    proc = await asyncio.create_subprocess_exec(
        "etcdctl", "--endpoints", endpoint, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, f"etcdctl {' '.join(args)} failed: {err.decode(errors='replace')}"
    return out


@pytest.fixture
def etcdctl() -> Etcdctl:
    """await etcdctl(endpoint, *args): run etcdctl against endpoint, return its stdout (fails on error)."""
    return _etcdctl


@pytest.fixture
def eventually() -> Eventually:
    """eventually(check, timeout, what): wait until check() is true (re-checked every 20 ms) or fail."""
    return _eventually
