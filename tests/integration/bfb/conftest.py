"""Fixtures for the BFB tests: a real synthetic BFB server on loopback and a cache in a temp dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bfb_harness import SIZE

from dpfd.host.bfb import BfbCache
from dpfd.sim.bfb_server import BfbServerConfig, BfbServerHandle, start_bfb_server


@pytest.fixture
async def bfb_server() -> AsyncIterator[BfbServerHandle]:
    handle = await start_bfb_server("127.0.0.1", 0, BfbServerConfig(default_size=SIZE))
    yield handle
    await handle.close()


@pytest.fixture
async def cache(tmp_path: Path) -> AsyncIterator[BfbCache]:
    c = BfbCache(tmp_path / "bfb", connect_timeout=2.0, idle_timeout=2.0, resume_delay=0.0)
    yield c
    await c.close()
