"""DMS test fixtures: per-test certificates, synthetic BFBs, and emulated DMS servers stopped after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from dpfd.host.dms.certs import CertPaths, write_cert_set
from dpfd.host.dms.tls import TlsFiles
from dpfd.sim.bfb_image import make_image
from dpfd.sim.bluefield.dms_server import EmulatedDms

BFB_BODY = 300_000  # about 5 chunks of 64 KiB: several TransferProgress messages with progress_every=64 KiB


@pytest.fixture
def certs(tmp_path: Path) -> CertPaths:
    return write_cert_set(tmp_path / "certs", "dpu-1", "127.0.0.1")


@pytest.fixture
def other_certs(tmp_path: Path) -> CertPaths:
    """A second, unrelated CA and its certificates (what a wrong client presents)."""
    return write_cert_set(tmp_path / "other-certs", "dpu-1", "127.0.0.1")


@pytest.fixture
def server_tls(certs: CertPaths) -> TlsFiles:
    return TlsFiles(certs.ca, certs.server_cert, certs.server_key)


@pytest.fixture
def client_tls(certs: CertPaths) -> TlsFiles:
    return TlsFiles(certs.ca, certs.client_cert, certs.client_key)


@pytest.fixture
def bfb(tmp_path: Path) -> Path:
    path = tmp_path / "bf-bundle-2.9.1-40_25.02_ubuntu-22.04_prod.bfb"
    path.write_bytes(make_image("bf-bundle", BFB_BODY))
    return path


StartDms = Callable[..., Awaitable[EmulatedDms]]


@pytest.fixture
async def start_dms(tmp_path: Path) -> AsyncIterator[StartDms]:
    """start_dms(**kwargs) -> a running EmulatedDms on loopback (fast reboots, fine-grained progress)."""
    started: list[EmulatedDms] = []

    async def start(**kwargs: Any) -> EmulatedDms:
        kwargs.setdefault("reboot_seconds", 0.2)
        kwargs.setdefault("progress_every", 64 * 1024)
        kwargs.setdefault("state_dir", tmp_path / f"dms-state-{len(started)}")
        dms = EmulatedDms("127.0.0.1:0", **kwargs)
        await dms.start()
        started.append(dms)
        return dms

    yield start
    for dms in started:
        await dms.stop()
