"""Standalone gossip member processes (``python -m dpfd.gossip``) and what each one sees, for the UDP tests."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def write_keys(path: Path, *keys: bytes) -> Path:
    path.write_text("".join(base64.b64encode(k).decode() + "\n" for k in keys))
    path.chmod(0o600)
    return path


@dataclass
class MemberProcess:
    name: str
    bind: str
    view_file: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def view(self) -> dict[str, str]:
        """Member name -> state, as this process last wrote it."""
        try:
            raw = json.loads(self.view_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {name: v["state"] for name, v in raw.items()}

    def sees(self, member: str, state: str) -> bool:
        return self.view().get(member) == state

    def logged(self, change: str, member: str) -> bool:
        """Whether this process printed a `change` (joined, updated, failed, left) of `member`."""
        for line in self.log.read_text().splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("change") == change and event.get("member") == member:
                return True
        return False

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=15)


@dataclass
class Members:
    tmp: Path
    key_file: Path
    netns: str | None = None
    procs: list[MemberProcess] = field(default_factory=list)

    def start(self, name: str, bind: str, join: list[str], *, netns: str | None = None) -> MemberProcess:
        view = self.tmp / f"{name}.json"
        log = self.tmp / f"{name}.log"
        cmd = [sys.executable, "-m", "dpfd.gossip", "--name", name, "--bind", bind, "--key-file", str(self.key_file),
               "--view-file", str(view), "--profile", "local", "--rejoin-interval", "0.5"]  # fmt: skip
        for seed in join:
            cmd += ["--join", seed]
        ns = netns or self.netns
        if ns is not None:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        m = MemberProcess(name, bind, view, proc, log)
        self.procs.append(m)
        return m

    def stop_all(self) -> None:
        for m in self.procs:
            if m.proc.poll() is None:
                m.proc.kill()
                m.proc.wait(timeout=10)
