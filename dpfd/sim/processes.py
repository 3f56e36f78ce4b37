"""Child processes of dpf-sim: started with their logs in the state dir, recorded, stopped by PID."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class ChildRecord:
    name: str
    pid: int
    argv: list[str]
    log: str


class ProcessGroup:
    """Starts children, remembers them in `<state_dir>/processes.json`, stops them in reverse order."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.record_path = state_dir / "processes.json"
        self.children: list[tuple[ChildRecord, subprocess.Popen[bytes] | None]] = []

    def spawn(self, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log_path = self.state_dir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})}, start_new_session=True,
            )  # fmt: skip
        self.children.append((ChildRecord(name, proc.pid, argv, str(log_path)), proc))
        self._save()
        return proc

    def adopt(self, name: str, pid: int, argv: list[str], log: str) -> None:
        """Record a process started by someone else (etcd's launcher) so `down` can stop it too."""
        self.children.append((ChildRecord(name, pid, argv, log), None))
        self._save()

    def _save(self) -> None:
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"owner": os.getpid(), "children": [asdict(r) for r, _ in self.children]}, indent=1))
        tmp.replace(self.record_path)

    def exited(self) -> list[tuple[str, int]]:
        """Children that have died, with their exit codes."""
        return [(r.name, p.returncode) for r, p in self.children if p is not None and p.poll() is not None]

    def stop_all(self, timeout: float = 10.0) -> None:
        for record, proc in reversed(self.children):
            if proc is not None:
                _stop_popen(proc, timeout)
            else:
                stop_pid(record.pid, record.argv, timeout)
        self.children.clear()
        self.record_path.unlink(missing_ok=True)


def _stop_popen(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def runs(pid: int, argv: Sequence[str]) -> bool:
    """`pid` is alive (not a zombie) and still runs `argv` (PIDs get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return [c.decode(errors="replace") for c in cmdline if c] == list(argv)


def stop_pid(pid: int, argv: list[str], timeout: float = 10.0) -> bool:
    """SIGTERM, wait, SIGKILL: only if `pid` still runs `argv`. Returns whether it was running."""
    if not runs(pid, argv):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not runs(pid, argv):
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return True


def stop_recorded(state_dir: Path, timeout: float = 10.0) -> list[str]:
    """Stop what a (possibly dead) `dpf-sim up` recorded in its state dir. Returns the names stopped."""
    path = state_dir / "processes.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    stopped: list[str] = []
    owner = int(data.get("owner", 0))
    # The owner cleans up its own children on SIGTERM; give it the chance first.
    owner_stopped = bool(owner and owner != os.getpid() and _pid_alive(owner))
    if owner_stopped:
        os.kill(owner, signal.SIGTERM)
        deadline = time.monotonic() + timeout + 5
        while time.monotonic() < deadline and _pid_alive(owner):
            time.sleep(0.05)
        stopped.append("dpf-sim")
    for child in reversed(data.get("children", [])):
        # Whatever the owner left behind (or everything, if the owner was killed).
        if stop_pid(int(child["pid"]), list(child["argv"]), timeout) or owner_stopped:
            stopped.append(str(child["name"]))
    path.unlink(missing_ok=True)
    return stopped


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def python_module(module: str, *args: str) -> list[str]:
    """argv that runs `python -m module` with this interpreter (works from a venv without activation)."""
    return [sys.executable, "-m", module, *args]
