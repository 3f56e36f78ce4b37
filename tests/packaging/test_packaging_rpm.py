"""The .rpm: what it holds, and `rpm --root DIR -i --nodeps` into an alternate root, scriptlets and all.

The alternate root is a throwaway overlay of this machine's root (OverlayRoot), so the scriptlets find a shell,
getent and groupadd there, as they would on the target. (Debian's rpm warns that it should not install packages
on Debian; it is only ever pointed at that copy.)
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BuiltPackages, require_tools
from overlay_root import OverlayRoot

pytestmark = pytest.mark.packaging

EXPECTED_FILES = {
    "/opt/dpf/bin/dpfd",
    "/opt/dpf/bin/dpfctl",
    "/opt/dpf/bin/dpf-controller",
    "/opt/dpf/bin/dpf-sfc-cni",
    "/opt/dpf/pyvenv.cfg",
    "/usr/lib/systemd/system/dpfd.service",
    "/usr/lib/systemd/system/dpf-controller.service",
    "/etc/dpf/controller.env",
    "/usr/share/dpf/dpfd.yaml",
    "/usr/bin/dpfd",
    "/usr/bin/dpfctl",
    "/usr/bin/dpf-controller",
    "/usr/bin/dpf-sfc-cni",
    "/opt/cni/bin/dpf-sfc-cni",
}


def rpm_query(*args: str) -> str:
    return subprocess.run(["rpm", "-q", *args], capture_output=True, text=True, check=True, timeout=60).stdout


@pytest.fixture
def root(tmp_path: Path) -> Iterator[OverlayRoot]:
    require_tools("rpm", "unshare", "nsenter")
    with OverlayRoot(tmp_path / "root") as r:
        yield r


def test_rpm_holds_the_venv_units_config_and_links(built_packages: BuiltPackages) -> None:
    rpm = str(built_packages.rpm)
    files = set(rpm_query("-lp", rpm).splitlines())
    assert files >= EXPECTED_FILES
    assert not any(f.startswith("/lib/systemd/") for f in files)  # the deb's path; RPM distributions use /usr/lib
    assert rpm_query("-cp", rpm).split() == ["/etc/dpf/controller.env"]
    requires = rpm_query("-p", "--requires", rpm)
    assert "python3.11" in requires.split()
    assert "shadow-utils" in requires.split()
    scripts = rpm_query("-p", "--scripts", rpm)
    assert "groupadd --system dpf" in scripts
    assert "systemctl stop dpfd.service" in scripts
    assert "systemctl start" not in scripts and "enable" not in scripts  # installing starts nothing


def test_rpm_installs_into_an_alternate_root_and_erases(root: OverlayRoot, built_packages: BuiltPackages) -> None:
    r = str(root.root)
    root.host(["rpm", "--root", r, "--initdb"])
    root.host(["rpm", "--root", r, "-i", "--nodeps", str(built_packages.rpm)])  # the host path: rpm reads it

    for path in EXPECTED_FILES:
        assert root.exists(path), path
    assert root.run(["dpfd", "--version"]).stdout.strip() == f"dpfd {built_packages.version}"
    assert "usage: dpfctl" in root.run(["dpfctl", "--help"]).stdout
    assert root.run(["getent", "group", "dpf"]).stdout.startswith("dpf:")  # %pre
    assert root.run(["stat", "-c", "%a %G", "/etc/dpf/dpfd.yaml"]).stdout.split() == ["640", "dpf"]  # %post
    verify = root.run(["systemd-analyze", "verify", "/usr/lib/systemd/system/dpfd.service"], check=False)
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")

    root.host(["rpm", "--root", r, "-e", "dpf"])
    for path in EXPECTED_FILES:
        assert not root.exists(path), path
    assert not root.exists("/opt/dpf")  # %postun found no stray bytecode or directories to leave
