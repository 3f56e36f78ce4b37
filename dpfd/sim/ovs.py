"""A private Open vSwitch: ovsdb-server + ovs-vswitchd (userspace datapath) in a dir of their own and, by default,
a network namespace of their own. The emulated BlueField's OVS in dpf-sim, and the tests' (tests/ovs_fixture.py).

ovs-vswitchd runs in its own network namespace (`netns`), so the tap devices the userspace datapath makes
(`ovs-netdev`, one per bridge and internal port) cannot clash with another instance's or the host's, and
system-type ports (veths) must be moved into that namespace before they are added. The daemons are children of
this process (no --detach) and are stopped by the PIDs in their pidfiles; the dir and netns are removed.
Synchronous (subprocess): call it from a worker thread in async code.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
BINARIES = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl", "ip")
_seq = itertools.count()


class OvsError(RuntimeError):
    """An OVS command or daemon failed; the message carries its output or log tail."""


def missing_ovs() -> str | None:
    """Why a private OVS cannot run here, or None if it can."""
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        return f"Open vSwitch tools not installed ({', '.join(missing)} missing; `make deps` installs them)"
    if not SCHEMA.exists():
        return f"Open vSwitch schema {SCHEMA} missing (package openvswitch-common)"
    if os.geteuid() != 0:
        return "a private OVS with its own network namespace needs root"
    return None


def _wait(cond: Callable[[], object], timeout: float, what: str, log: Path | None = None) -> None:
    """Poll `cond()` (a callable) until truthy, for daemon start-up outside an event loop."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise OvsError(
                f"timed out after {timeout:g}s waiting for {what}" + (f"; log tail:\n{_tail(log)}" if log else "")
            )
        time.sleep(0.01)


def _answers(path: Path) -> bool:
    """A unix socket someone listens on (a stale file left by a killed daemon refuses)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def _tail(path: Path | None, n: int = 15) -> str:
    if path is None or not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-n:])


class PrivateOvs:
    """One ovsdb-server + ovs-vswitchd. `start()`/`stop()`, or use as a context manager."""

    def __init__(self, base: Path | None = None, netns: bool = True) -> None:
        # Unix socket paths are limited to 107 bytes: a short dir under /tmp, not pytest's long tmp_path.
        self.rundir = Path(tempfile.mkdtemp(prefix="dpfovs-", dir=base))
        self.netns: str | None = f"dpfovs-{os.getpid()}-{next(_seq)}" if netns else None
        self.db_sock = self.rundir / "db.sock"
        self.db = f"unix:{self.db_sock}"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self.vswitchd_starts = 0

    # ------------------------------------------------------------------ commands

    @property
    def vswitchd_ctl(self) -> Path:
        """ovs-vswitchd's control socket where plain `ovs-appctl` looks for it: <rundir>/ovs-vswitchd.<pid>.ctl."""
        return self.rundir / f"ovs-vswitchd.{self.pid('ovs-vswitchd') or 0}.ctl"

    @property
    def env(self) -> dict[str, str]:
        """Environment for OVS tools so they find this instance's sockets (br*.mgmt, *.ctl)."""
        d = str(self.rundir)
        return {**os.environ, "OVS_RUNDIR": d, "OVS_LOGDIR": d, "OVS_DBDIR": d}

    def run(self, argv: Sequence[str], timeout: float = 10.0, check: bool = True) -> str:
        """Run a command with this instance's environment; return stdout, raise OvsError on failure."""
        p = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise OvsError(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip() or p.stdout.strip()}")
        return p.stdout

    def vsctl(self, *args: str, timeout: float = 10.0) -> str:
        """ovs-vsctl against this ovsdb; waits for ovs-vswitchd to apply the change (no --no-wait)."""
        return self.run(["ovs-vsctl", f"--db={self.db}", f"--timeout={int(timeout)}", *args], timeout=timeout + 2)

    def mgmt(self, bridge: str) -> str:
        """The OpenFlow management socket of `bridge`, as ovs-ofctl takes it."""
        return f"unix:{self.rundir / bridge}.mgmt"

    def ofctl(self, command: str, bridge: str, *args: str, protocol: str = "OpenFlow14") -> str:
        """`ovs-ofctl -O <protocol> <command> unix:<rundir>/<bridge>.mgmt <args>`."""
        return self.run(["ovs-ofctl", "-O", protocol, command, self.mgmt(bridge), *args])

    def appctl(self, *args: str) -> str:
        return self.run(["ovs-appctl", "-t", str(self.vswitchd_ctl), *args])

    def add_bridge(self, name: str = "br-sfc", fail_mode: str = "secure") -> None:
        """A userspace-datapath bridge as DPF's flavor script makes br-sfc (datapath_type=netdev, fail_mode)."""
        self.vsctl("add-br", name, "--", "set", "Bridge", name, "datapath_type=netdev", f"fail_mode={fail_mode}")

    def pid(self, daemon: str) -> int | None:
        """PID from `<daemon>.pid` in the rundir, or None if there is none."""
        try:
            return int((self.rundir / f"{daemon}.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    # ------------------------------------------------------------------ lifecycle

    def _spawn(self, name: str, argv: list[str]) -> None:
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]  # exec: the daemon keeps this PID
        (self.rundir / f"{name}.pid").unlink(missing_ok=True)
        out = open(self.rundir / f"{name}.out", "ab")  # noqa: SIM115 - the child owns it
        try:
            self._procs[name] = subprocess.Popen(argv, env=self.env, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                                 start_new_session=True)  # fmt: skip
        finally:
            out.close()
        proc = self._procs[name]
        log = self.rundir / f"{name}.log"
        _wait(lambda: self.pid(name) == proc.pid or proc.poll() is not None, 10, f"{name} pidfile", log)
        if proc.poll() is not None:
            raise OvsError(
                f"{name} exited {proc.returncode} at start:\n{_tail(self.rundir / f'{name}.out')}\n{_tail(log)}"
            )

    def start(self) -> PrivateOvs:
        try:
            if self.netns is not None:
                self.run(["ip", "netns", "add", self.netns])
                self.run(["ip", "netns", "exec", self.netns, "ip", "link", "set", "lo", "up"])
            conf = self.rundir / "conf.db"
            self.run(["ovsdb-tool", "create", str(conf), str(SCHEMA)])
            d = self.rundir
            self._spawn("ovsdb-server", [
                "ovsdb-server", str(conf), f"--remote=punix:{self.db_sock}",
                "--remote=db:Open_vSwitch,Open_vSwitch,manager_options",
                f"--pidfile={d}/ovsdb-server.pid", f"--unixctl={d}/ovsdb-server.ctl",
                f"--log-file={d}/ovsdb-server.log",
            ])  # fmt: skip
            _wait(self.db_sock.exists, 10, "ovsdb-server socket", d / "ovsdb-server.log")
            self.run(["ovs-vsctl", f"--db={self.db}", "--no-wait", "--", "init",
                      "--", "set", "Open_vSwitch", ".", "other_config:dpdk-init=false"])  # fmt: skip
            self.start_vswitchd()
        except BaseException:
            self.stop()
            raise
        return self

    def start_vswitchd(self) -> None:
        d = self.rundir
        self._spawn("ovs-vswitchd", [
            "ovs-vswitchd", self.db, f"--pidfile={d}/ovs-vswitchd.pid", f"--log-file={d}/ovs-vswitchd.log",
        ])  # fmt: skip
        # Ready when it has applied the current configuration (`ovs-vsctl` without --no-wait waits for that) and
        # every bridge's OpenFlow socket answers (after a restart that comes a little later than cur_cfg).
        self.vsctl("--", "set", "Open_vSwitch", ".", "external_ids:dpf-test-ready=true")
        bridges = self.vsctl("list-br").split()
        socks = [self.vswitchd_ctl, *(self.rundir / f"{b}.mgmt" for b in bridges)]
        _wait(lambda: all(_answers(s) for s in socks), 10, "ovs-vswitchd sockets", d / "ovs-vswitchd.log")
        self.vswitchd_starts += 1

    def stop_vswitchd(self, sig: int = signal.SIGTERM) -> None:
        self._stop("ovs-vswitchd", sig)

    def restart_vswitchd(self, sig: int = signal.SIGTERM) -> None:
        """Stop ovs-vswitchd (SIGTERM, or e.g. SIGKILL for a crash) and start it again; returns once it is ready.

        ovsdb-server and its data stay; OpenFlow rules are lost, as on a real restart."""
        self.stop_vswitchd(sig)
        self.start_vswitchd()

    def _stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self._procs.pop(name, None)
        pid = self.pid(name)
        if proc is None:
            return
        if pid is not None and pid != proc.pid:
            raise OvsError(f"{name} pidfile says {pid}, but this fixture started {proc.pid}")
        if proc.poll() is None:
            os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        (self.rundir / f"{name}.pid").unlink(missing_ok=True)

    def stop(self) -> None:
        for name in ("ovs-vswitchd", "ovsdb-server"):
            self._stop(name)
        if self.netns is not None:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=10)
        shutil.rmtree(self.rundir, ignore_errors=True)

    def __enter__(self) -> PrivateOvs:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
