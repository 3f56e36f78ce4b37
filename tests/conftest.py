"""Shared fixtures: the real services the tests talk to, started and stopped here."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from dpfd.sim.etcd import EtcdCluster
from dpfd.store import Store


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    """One real etcd member for the whole session."""
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), size=1)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def etcd_endpoints(etcd_server: EtcdCluster) -> list[str]:
    """Endpoints of the session etcd, emptied before the test so tests do not see each other's keys."""
    subprocess.run(
        ["etcdctl", "--endpoints", etcd_server.endpoints[0], "del", "", "--from-key"],
        check=True, capture_output=True, timeout=10,
    )  # fmt: skip
    return etcd_server.endpoints


@pytest.fixture
async def store(etcd_endpoints: list[str]) -> AsyncIterator[Store]:
    """A client of the session etcd (emptied first, as etcd_endpoints is)."""
    s = await Store.connect(etcd_endpoints)
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def etcd_cluster3(tmp_path: Path) -> Iterator[EtcdCluster]:
    """A fresh 3-member cluster on loopback, for failover tests."""
    cluster = EtcdCluster(tmp_path / "etcd3", size=3)
    cluster.start()
    yield cluster
    cluster.stop()
