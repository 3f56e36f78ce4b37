"""The .deb, installed with the real dpkg into a throwaway overlay of this machine's root (OverlayRoot).

What an operator sees: `dpkg -i` makes the dpf group and a default config and starts nothing; the commands run from
/usr/bin; the installed units pass `systemd-analyze verify`; `dpkg -r` then `dpkg -P` leave no file behind (the
overlay's upper layer, which records every change, holds only dpkg's own bookkeeping afterwards).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BuiltPackages, require_tools
from overlay_root import OverlayRoot

pytestmark = pytest.mark.packaging

PKGS = "/mnt/pkgs"
UNITS = ("/lib/systemd/system/dpfd.service", "/lib/systemd/system/dpf-controller.service")
COMMANDS = ("/usr/bin/dpfd", "/usr/bin/dpfctl", "/usr/bin/dpf-controller", "/usr/bin/dpf-sfc-cni")
# What dpkg and groupadd/groupdel write for themselves; anything else left after a purge is the package's litter.
BOOKKEEPING_FILES = {
    "/etc/group",
    "/etc/group-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/.pwd.lock",
    "/var/log/dpkg.log",
}
BOOKKEEPING_DIRS = ("/var/lib/dpkg/", "/var/cache/debconf/")


@pytest.fixture
def root(tmp_path: Path, built_packages: BuiltPackages) -> Iterator[OverlayRoot]:
    require_tools("dpkg", "unshare", "nsenter")
    with OverlayRoot(tmp_path / "root", binds={built_packages.dist: PKGS}) as r:
        yield r


def install(root: OverlayRoot, built: BuiltPackages) -> None:
    out = root.run(["dpkg", "-i", f"{PKGS}/{built.deb.name}"])
    assert "Setting up dpf" in out.stdout


def test_install_gives_commands_group_config_and_units(root: OverlayRoot, built_packages: BuiltPackages) -> None:
    # Whatever the host has, the copy starts without the group, so that making it is the package's doing.
    root.sh("! getent group dpf >/dev/null || groupdel dpf")
    install(root, built_packages)

    assert root.run(["dpfd", "--version"]).stdout.strip() == f"dpfd {built_packages.version}"
    assert "usage: dpfctl" in root.run(["dpfctl", "--help"]).stdout
    assert "usage: dpf-controller" in root.run(["dpf-controller", "--help"]).stdout
    for command in COMMANDS:
        assert root.run(["readlink", "-e", command]).stdout.strip().startswith("/opt/dpf/bin/")
    assert root.run(["readlink", "-e", "/opt/cni/bin/dpf-sfc-cni"]).stdout.strip() == "/opt/dpf/bin/dpf-sfc-cni"
    completion = root.run(["bash", "-c", ". /usr/share/bash-completion/completions/dpfctl && complete -p dpfctl"])
    assert completion.stdout.startswith("complete -F ")

    assert root.run(["getent", "group", "dpf"]).stdout.startswith("dpf:")
    # The default config: copied from /usr/share/dpf, readable by group dpf (dpfctl reads etcd endpoints in it).
    assert root.run(["stat", "-c", "%a %U %G", "/etc/dpf/dpfd.yaml"]).stdout.split() == ["640", "root", "dpf"]
    assert root.run(["cmp", "/etc/dpf/dpfd.yaml", "/usr/share/dpf/dpfd.yaml"]).returncode == 0
    conffiles = root.run(["dpkg-query", "-W", "-f", "${Conffiles}", "dpf"]).stdout
    assert "/etc/dpf/controller.env" in conffiles
    assert "/etc/dpf/dpfd.yaml" not in conffiles

    verify = root.run(["systemd-analyze", "verify", *UNITS], check=False)
    assert (verify.returncode, verify.stdout + verify.stderr) == (0, "")


def test_python_writes_nothing_under_opt_dpf(root: OverlayRoot, built_packages: BuiltPackages) -> None:
    """The package ships its bytecode: running every command leaves /opt/dpf exactly as dpkg installed it."""
    install(root, built_packages)
    for argv in (["dpfd", "--version"], ["dpfctl", "--help"], ["dpf-controller", "--help"], ["dpfd", "--help"]):
        root.run(argv)
    owned = set(root.run(["dpkg-query", "-L", "dpf"]).stdout.splitlines())
    present = set(root.run(["find", "/opt/dpf"]).stdout.splitlines())
    assert present - owned == set()


def test_remove_keeps_config_and_purge_leaves_nothing(root: OverlayRoot, built_packages: BuiltPackages) -> None:
    install(root, built_packages)
    root.run(["systemctl", "enable", "dpfd.service"])  # offline: links it into multi-user.target.wants
    root.run(["dpfd", "--version"])
    root.sh("mkdir -p /var/lib/dpfd/bfb-cache && echo progress > /var/lib/dpfd/state.json")  # as a run would

    root.run(["dpkg", "-r", "dpf"])
    for gone in ("/opt/dpf", *COMMANDS, *UNITS, "/opt/cni/bin/dpf-sfc-cni"):
        assert not root.exists(gone), gone
    assert root.exists("/etc/dpf/dpfd.yaml")  # remove is not purge
    assert root.exists("/var/lib/dpfd/state.json")

    root.run(["dpkg", "-P", "dpf"])
    assert root.run(["dpkg-query", "-W", "dpf"], check=False).returncode != 0
    assert root.run(["getent", "group", "dpf"], check=False).returncode != 0
    left = [
        c
        for c in root.changes()
        if c.kind != "d" and c.path not in BOOKKEEPING_FILES and not c.path.startswith(BOOKKEEPING_DIRS)
    ]
    assert left == []
    # Directories copied up because something was created and removed inside them are fine; new ones are not.
    new_dirs = [c.path for c in root.changes() if c.kind == "d" and not Path(c.path).exists()]
    assert new_dirs == []


def test_a_config_written_before_install_is_kept_without_a_prompt(
    root: OverlayRoot, built_packages: BuiltPackages
) -> None:
    """On a DPU, bf.cfg writes /etc/dpf/dpfd.yaml and then runs `apt-get install -y dpf` with nobody at a terminal."""
    ours = "node: dpu-0\nrole: dpu\netcd:\n  endpoints: [https://etcd-1:2379]\n"
    root.sh(f"mkdir -p /etc/dpf && printf '%s' '{ours}' > /etc/dpf/dpfd.yaml && chmod 0600 /etc/dpf/dpfd.yaml")
    out = root.run(["sh", "-c", f"dpkg -i {PKGS}/{built_packages.deb.name} < /dev/null"])
    assert "Setting up dpf" in out.stdout
    assert root.run(["cat", "/etc/dpf/dpfd.yaml"]).stdout == ours
    assert root.run(["stat", "-c", "%a", "/etc/dpf/dpfd.yaml"]).stdout.strip() == "600"
