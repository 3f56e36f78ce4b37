"""A real systemd as PID 1, booted by systemd-nspawn on a throwaway overlay of this machine's root.

The host's PID 1 is not systemd, so units can only be run for real inside a container. The container is the host's
own tree (an OverlayRoot: writes vanish with it) with /etc/systemd/system replaced by a directory the test controls,
so none of the host's enabled services (etcd, OVS, ...) start in it. It boots to `pkgtest.target` (basic.target and
nothing else) and shares the host's network, so a daemon in it reaches an etcd the test runs on the host's
loopback. Commands run inside with nsenter into the container's PID 1.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from overlay_root import CLEAN_ENV, OverlayRoot

TEST_TARGET = """\
[Unit]
Description=dpf packaging test: basic.target and nothing else
Requires=basic.target
After=basic.target
AllowIsolate=yes
"""
BOOT_TIMEOUT = 60.0


class ContainerError(Exception):
    pass


class NspawnContainer:
    """`boot()` it (or use it as a context manager); `run` commands inside; `shutdown()` powers it off."""

    def __init__(self, scratch: Path, *, binds_ro: dict[Path, str] | None = None, name: str = "dpf-pkgtest") -> None:
        self.scratch = scratch
        self.name = name
        self._binds_ro = binds_ro or {}
        self._overlay = OverlayRoot(scratch / "overlay", api_mounts=False)
        self._units = scratch / "units"
        self._console = scratch / "console.log"
        self._nspawn: subprocess.Popen[bytes] | None = None
        self._init_pid: int | None = None

    def boot(self) -> NspawnContainer:
        self._units.mkdir(parents=True, exist_ok=True)
        (self._units / "pkgtest.target").write_text(TEST_TARGET)
        # No first-boot wizard waiting on a console nobody reads.
        (self._units / "systemd-firstboot.service").symlink_to("/dev/null")
        self._overlay.start()
        binds = [f"--bind={self._units}:/etc/systemd/system"]  # writable: `systemctl enable` links units in it
        binds += [f"--bind-ro={src}:{dst}" for src, dst in self._binds_ro.items()]
        console = self._console.open("wb")
        self._nspawn = subprocess.Popen(
            ["nsenter", "-t", str(self._overlay.pid), "-m", "--",
             "systemd-nspawn", "--quiet", "--keep-unit", "--register=no", "--console=pipe", f"--machine={self.name}",
             f"--directory={self._overlay.root}", "--boot", *binds, "--", "systemd.unit=pkgtest.target"],
            stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, env=CLEAN_ENV,
        )  # fmt: skip
        console.close()
        self._wait_booted()
        return self

    def _wait_booted(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT
        state = ""
        while time.monotonic() < deadline:
            if self._nspawn is not None and self._nspawn.poll() is not None:
                raise ContainerError(f"systemd-nspawn exited {self._nspawn.returncode}: {self.console()}")
            if self._init_pid is None:
                self._init_pid = self._find_init()
            if self._init_pid is not None:
                state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.1)
        raise ContainerError(f"container not booted within {BOOT_TIMEOUT:g}s (state {state!r}): {self.console()}")

    def _find_init(self) -> int | None:
        """The container's PID 1 as the host sees it: the nspawn process's child running systemd."""
        nspawn = self._nspawn_pid()
        if nspawn is None:
            return None
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == nspawn and (entry / "comm").read_text().strip() == "systemd":
                    return int(entry.name)
        return None

    def _nspawn_pid(self) -> int | None:
        """nsenter execs systemd-nspawn in place (same PID) once it has entered the namespace."""
        if self._nspawn is None:
            return None
        with contextlib.suppress(OSError):
            if (Path("/proc") / str(self._nspawn.pid) / "comm").read_text().strip() == "systemd-nspawn":
                return self._nspawn.pid
        return None

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 60, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        if self._init_pid is None:
            raise ContainerError("container not booted")
        cmd = ["nsenter", "-t", str(self._init_pid), "-m", "-u", "-i", "-p", "--", *argv]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=CLEAN_ENV, input=stdin)
        if check and proc.returncode != 0:
            raise ContainerError(
                f"in container: {' '.join(argv)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        self.run(["sh", "-c", f'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod {mode} "$1"', "write", path],
                 stdin=text)  # fmt: skip

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run(["systemctl", "show", unit, *(f"--property={p}" for p in props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        return self.run(["journalctl", "--no-pager", "-o", "cat", "-u", unit], check=False).stdout

    def console(self) -> str:
        with contextlib.suppress(OSError):
            return self._console.read_text(errors="replace")[-4000:]
        return ""

    def shutdown(self) -> None:
        """SIGTERM asks nspawn for an orderly poweroff; a second one, then SIGKILL, if it does not come."""
        nspawn, self._nspawn = self._nspawn, None
        if nspawn is not None:
            for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    nspawn.send_signal(sig)
                try:
                    nspawn.wait(20)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._overlay.stop()
        # nspawn leaves an empty directory of this machine's name behind on the host.
        with contextlib.suppress(OSError):
            Path("/run/systemd/nspawn/propagate", self.name).rmdir()

    def __enter__(self) -> NspawnContainer:
        return self.boot()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
