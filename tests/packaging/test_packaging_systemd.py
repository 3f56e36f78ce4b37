"""The .deb under a real systemd (PID 1 of a systemd-nspawn container): what `systemctl` does with dpfd.

The container (NspawnContainer) is a throwaway overlay of this machine's root booted to basic.target; it shares the
host's network, so the packaged dpfd in it reaches the session's etcd on loopback. The package is installed with
dpkg in the container and dpfd runs from its unit exactly as shipped, hardening included; only the watchdog test
shortens WatchdogSec and RestartSec with a runtime drop-in, so that a hang is seen in seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import BuiltPackages, require_tools
from nspawn_container import NspawnContainer

from dpfd.sim.etcd import EtcdCluster
from tests.waiting import eventually

pytestmark = pytest.mark.packaging

PKGS = "/mnt/pkgs"
DROP_IN = "/run/systemd/system/dpfd.service.d/10-test.conf"


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory, built_packages: BuiltPackages) -> Iterator[NspawnContainer]:
    """One booted container per module, with the .deb installed (and nothing started by that)."""
    require_tools("systemd-nspawn", "nsenter", "unshare")
    scratch = tmp_path_factory.mktemp("nspawn")
    name = f"dpf-pkgtest-{uuid.uuid4().hex[:6]}"
    with NspawnContainer(scratch, binds_ro={built_packages.dist: PKGS}, name=name) as c:
        c.run(["dpkg", "-i", f"{PKGS}/{built_packages.deb.name}"])
        yield c


def configure(c: NspawnContainer, etcd: EtcdCluster, node: str) -> None:
    c.write("/etc/dpf/dpfd.yaml", f"node: {node}\nrole: host\netcd:\n  endpoints: [{etcd.endpoints[0]}]\n", "0640")


def fresh_start(c: NspawnContainer) -> None:
    c.run(["systemctl", "stop", "dpfd.service"])
    c.run(["systemctl", "reset-failed", "dpfd.service"], check=False)
    c.run(["systemctl", "start", "--no-block", "dpfd.service"])


def ready(c: NspawnContainer) -> dict[str, str] | None:
    """The unit's state once systemd has READY=1 (active/running) and dpfd has said so in its status line."""
    state = c.show("dpfd.service", "ActiveState", "SubState", "StatusText", "MainPID", "NRestarts")
    running = state["ActiveState"] == "active" and state["SubState"] == "running"
    return state if running and state["StatusText"] else None


def test_installing_starts_nothing(container: NspawnContainer) -> None:
    for unit in ("dpfd.service", "dpf-controller.service"):
        state = container.show(unit, "LoadState", "ActiveState", "UnitFileState")
        assert state == {"LoadState": "loaded", "ActiveState": "inactive", "UnitFileState": "disabled"}, unit


async def test_the_shipped_config_is_refused_once_not_restarted_in_a_loop(container: NspawnContainer) -> None:
    container.run(["cp", "/usr/share/dpf/dpfd.yaml", "/etc/dpf/dpfd.yaml"])
    fresh_start(container)
    failed = await eventually(
        lambda: (
            (s := container.show("dpfd.service", "ActiveState", "ExecMainStatus", "NRestarts", "Result"))
            and s["ActiveState"] == "failed"
            and s
        ),
        within=30,
        what="dpfd to fail on the config without a node name",
    )
    assert (failed["ExecMainStatus"], failed["NRestarts"], failed["Result"]) == ("2", "0", "exit-code")
    assert "field 'node': required field is missing" in container.journal("dpfd.service")


async def test_dpfd_gets_ready_serves_group_dpf_and_survives_a_reload(
    container: NspawnContainer, etcd_server: EtcdCluster
) -> None:
    configure(container, etcd_server, "nspawn-ready")
    fresh_start(container)
    state = await eventually(lambda: ready(container), within=60, what="dpfd READY under systemd")
    assert int(state["MainPID"]) > 0
    sock = container.run(["stat", "-c", "%a %U %G", "/run/dpfd/admin.sock"]).stdout.split()
    assert sock == ["660", "root", "dpf"]  # CAP_CHOWN in the bounding set is enough for that
    assert "event=ready node=nspawn-ready" in container.journal("dpfd.service")

    # `systemctl reload` sends SIGHUP: with gossip off there is nothing to reload, and dpfd goes on (same process).
    container.run(["systemctl", "reload", "dpfd.service"])
    await eventually(lambda: "event=reload_ignored" in container.journal("dpfd.service"), within=30, what="reload")
    after = await eventually(lambda: ready(container), within=60, what="dpfd running after a reload")
    assert after["MainPID"] == state["MainPID"], "a reload must not restart dpfd"


async def test_a_hung_dpfd_is_killed_by_the_watchdog_and_restarted(
    container: NspawnContainer, etcd_server: EtcdCluster
) -> None:
    configure(container, etcd_server, "nspawn-watchdog")
    container.write(DROP_IN, "[Service]\nWatchdogSec=3s\nRestartSec=1s\n")
    container.run(["systemctl", "daemon-reload"])
    try:
        fresh_start(container)
        before = await eventually(lambda: ready(container), within=60, what="dpfd READY")
        assert container.show("dpfd.service", "WatchdogUSec")["WatchdogUSec"] == "3s"

        # A hang: the process is still there but pings nothing.
        container.run(["kill", "-STOP", before["MainPID"]])
        after = await eventually(
            lambda: (s := ready(container)) and s["MainPID"] != before["MainPID"] and s,
            within=60,
            what="systemd to kill the stopped dpfd and start a new one",
        )
        assert int(after["NRestarts"]) == int(before["NRestarts"]) + 1
        journal = container.journal("dpfd.service")
        assert "Watchdog timeout (limit 3s)!" in journal
        assert "Failed with result 'watchdog'" in journal
    finally:
        container.run(["rm", "-rf", str(Path(DROP_IN).parent)])
        container.run(["systemctl", "daemon-reload"])


async def test_removing_the_package_stops_dpfd_and_purging_forgets_it(
    container: NspawnContainer, etcd_server: EtcdCluster
) -> None:
    configure(container, etcd_server, "nspawn-remove")
    container.run(["systemctl", "enable", "dpfd.service"])
    fresh_start(container)
    await eventually(lambda: ready(container), within=60, what="dpfd READY")

    container.run(["dpkg", "-r", "dpf"])
    state = container.show("dpfd.service", "LoadState", "ActiveState")
    assert state == {"LoadState": "not-found", "ActiveState": "inactive"}  # stopped by prerm, forgotten after
    assert container.run(["test", "-e", "/etc/dpf/dpfd.yaml"], check=False).returncode == 0

    container.run(["dpkg", "-P", "dpf"])
    leftovers = container.run(
        ["sh", "-c", "ls -d /etc/dpf /var/lib/dpfd /run/dpfd /opt/dpf 2>/dev/null; "
         "find /etc/systemd/system /run/systemd/system -name 'dpf*.service*' 2>/dev/null; getent group dpf"],
        check=False,
    ).stdout  # fmt: skip
    assert leftovers == ""
