"""A throwaway copy of this machine's root to install packages into: an overlay of `/` in a private mount namespace.

The overlay's upper layer (a tmpfs only that namespace sees) receives every write, so `dpkg -i` and `rpm --root` run
for real, with the host's own dpkg database and tools, while the host stays untouched. The upper layer is also the
exact list of what an install changed: after a purge it must hold nothing but the package manager's bookkeeping.

A holder process (`sleep`) keeps the namespace alive; commands enter it with nsenter. Needs root.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# A clean environment: the caller's (e.g. PYTHONDONTWRITEBYTECODE) must not hide what the package does on its own.
CLEAN_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}

_SETUP = r"""
set -eu
s=$1 api=$2; shift 2
mount -t tmpfs -o mode=0755 tmpfs "$s"
mkdir "$s/upper" "$s/work" "$s/root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$s/upper,workdir=$s/work" "$s/root"
if [ "$api" = yes ]; then
    mount --rbind /dev "$s/root/dev"
    mount -t proc proc "$s/root/proc"
    mount --rbind /sys "$s/root/sys"
    mount -t tmpfs tmpfs "$s/root/run"
    mount -t tmpfs tmpfs "$s/root/tmp"
fi
while [ $# -gt 0 ]; do
    mkdir -p "$s/root$2"
    mount --bind -o ro "$1" "$s/root$2"
    mount -o remount,bind,ro "$s/root$2"
    shift 2
done
echo ready
exec sleep infinity
"""


class OverlayRootError(Exception):
    pass


@dataclass(frozen=True)
class Change:
    """One entry of the upper layer: kind is find's %y (f file, d directory, l link, c whiteout)."""

    kind: str
    path: str  # absolute, as seen inside the root


class OverlayRoot:
    """Start with `start()` (or as a context manager); `run` a command chrooted into the copy, `host` one that sees
    the copy at `.root` (e.g. `rpm --root`, `systemd-nspawn -D`)."""

    def __init__(self, scratch: Path, *, binds: dict[Path, str] | None = None, api_mounts: bool = True) -> None:
        self.scratch = scratch
        self.root = scratch / "root"
        self._upper = scratch / "upper"
        self._binds = binds or {}
        self._api_mounts = api_mounts
        self._holder: subprocess.Popen[str] | None = None

    @property
    def pid(self) -> int:
        if self._holder is None:
            raise OverlayRootError("not started")
        return self._holder.pid

    def start(self) -> OverlayRoot:
        self.scratch.mkdir(parents=True, exist_ok=True)
        bind_args = [arg for src, dst in self._binds.items() for arg in (str(src), dst)]
        self._holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _SETUP, "overlay-root",
             str(self.scratch), "yes" if self._api_mounts else "no", *bind_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLEAN_ENV,
        )  # fmt: skip
        assert self._holder.stdout is not None
        line = self._holder.stdout.readline().strip()  # the holder says "ready" or exits: no polling needed
        if line != "ready":
            err = self._holder.stderr.read() if self._holder.stderr else ""
            self._holder.wait(5)
            raise OverlayRootError(f"overlay of / not set up (needs root and overlayfs): {err.strip() or line}")
        return self

    def stop(self) -> None:
        """End the holder; its namespace, the overlay and the tmpfs go with it."""
        holder, self._holder = self._holder, None
        if holder is None:
            return
        holder.send_signal(signal.SIGTERM)
        try:
            holder.wait(10)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait(10)
        for stream in (holder.stdout, holder.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> OverlayRoot:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def host(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """`argv` in the holder's mount namespace, on the host's root (the copy is at `self.root`)."""
        return _run(["nsenter", "-t", str(self.pid), "-m", "--", *argv], check=check, timeout=timeout)

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """`argv` chrooted into the copy, with a clean environment."""
        return self.host(["chroot", str(self.root), *argv], check=check, timeout=timeout)

    def sh(self, script: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(["sh", "-c", script], check=check)

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0 or self.is_link(path)

    def is_link(self, path: str) -> bool:
        return self.run(["test", "-L", path], check=False).returncode == 0

    def changes(self) -> list[Change]:
        """Everything the upper layer holds: what was written, replaced or deleted since `start` (but the mount
        points of `binds`, which the set-up made)."""
        out = self.host(["find", str(self._upper), "-mindepth", "1", "-printf", "%y %P\\0"]).stdout
        mount_points = {str(p) for dst in self._binds.values() for p in (Path(dst), *Path(dst).parents)}
        changes = []
        for entry in out.split("\0"):
            kind, _, rel = entry.partition(" ")
            if entry and "/" + rel not in mount_points:
                changes.append(Change(kind, "/" + rel))
        return changes


def _run(argv: Sequence[str], *, check: bool, timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=CLEAN_ENV)
    if check and proc.returncode != 0:
        raise OverlayRootError(
            f"{' '.join(argv)}: exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def require_root() -> None:
    if os.geteuid() != 0:
        raise OverlayRootError("the packaging tests need root (mount namespaces, overlayfs, systemd-nspawn)")
