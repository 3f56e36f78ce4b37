"""Fixtures of the admin socket tests: a short directory for sockets, and a joined host/DPU gossip pair."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from admin_helpers import Pair, all_alive, meta, start_agent


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A directory short enough for unix socket paths (pytest's tmp_path can be too long), readable by all."""
    d = Path(tempfile.mkdtemp(prefix="adm-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest_asyncio.fixture
async def pair() -> AsyncIterator[Pair]:
    host = await start_agent("worker-1", meta("host", "worker-1", age=3700))
    dpu = await start_agent(
        "worker-1-0000-03-00", meta("dpu", "worker-1-0000-03-00", host="worker-1", pci="0000-03-00")
    )
    try:
        assert await dpu.join([host.addr]) == 1
        assert await host.wait_for(all_alive(2), 5), host.members()
        yield Pair(host, dpu)
    finally:
        await dpu.stop()
        await host.stop()
