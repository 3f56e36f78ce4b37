"""The packaging tests' shared parts: the packages, built once per session by packaging/build.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 600


@dataclass(frozen=True)
class BuiltPackages:
    dist: Path
    deb: Path
    rpm: Path
    version: str


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "packaging: builds the .deb/.rpm once per session (about 15 s), needs root")


def require_tools(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install -y rpm systemd-container (see .ci/run)")
    if os.geteuid() != 0:
        pytest.fail("the packaging tests need root (mount namespaces, overlayfs, dpkg, systemd-nspawn)")


@pytest.fixture(scope="session")
def built_packages(tmp_path_factory: pytest.TempPathFactory) -> BuiltPackages:
    """The .deb and .rpm of the working tree, as `make packages` builds them (into a temporary dist)."""
    dist = tmp_path_factory.mktemp("dist")
    proc = subprocess.run(
        [str(REPO / "packaging" / "build.sh")],
        cwd=REPO, env={**os.environ, "DIST": str(dist)}, capture_output=True, text=True, timeout=BUILD_TIMEOUT,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.fail(f"packaging/build.sh failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    (deb,) = dist.glob("dpf_*_amd64.deb")
    (rpm,) = dist.glob("dpf-*-1.x86_64.rpm")
    version = deb.name.split("_")[1]
    return BuiltPackages(dist, deb, rpm, version)
