"""Start and stop Debian's etcd on free loopback ports: one member or a cluster.

Used by dpf-sim, the tests and the benchmarks. Everything it starts it stops by PID.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from dpfd.sim.ports import free_port


class EtcdError(RuntimeError):
    pass


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class EtcdCluster:
    """`size` members on loopback under `base_dir`, with short election timers for quick failover."""

    base_dir: Path
    size: int = 1
    heartbeat_ms: int = 50
    election_ms: int = 250
    token: str = "dpf"
    members: list[EtcdMember] = field(default_factory=list)

    def __post_init__(self) -> None:
        if shutil.which("etcd") is None:
            raise EtcdError("etcd is not installed (apt-get install etcd-server etcd-client)")
        self.base_dir = Path(self.base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not self.members:
            for i in range(self.size):
                name = f"m{i}"
                self.members.append(
                    EtcdMember(name, free_port(), free_port(), self.base_dir / name, self.base_dir / f"{name}.log")
                )

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def member(self, name: str) -> EtcdMember:
        for m in self.members:
            if m.name == name:
                return m
        raise KeyError(name)

    def _argv(self, m: EtcdMember, state: str) -> list[str]:
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        return [
            "etcd", "--name", m.name, "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", initial, "--initial-cluster-token", self.token,
            "--initial-cluster-state", state,
            "--heartbeat-interval", str(self.heartbeat_ms), "--election-timeout", str(self.election_ms),
            "--logger", "zap", "--log-outputs", "stderr",
        ]  # fmt: skip

    def _spawn(self, m: EtcdMember, state: str) -> None:
        log = m.log_path.open("ab")
        m.proc = subprocess.Popen(self._argv(m, state), stdout=log, stderr=log, start_new_session=True)
        log.close()

    def start(self, timeout: float = 20.0) -> None:
        for m in self.members:
            self._spawn(m, "new")
        self.wait_healthy(timeout)

    def wait_healthy(self, timeout: float = 20.0, members: list[EtcdMember] | None = None) -> None:
        deadline = time.monotonic() + timeout
        pending = list(members if members is not None else [m for m in self.members if m.running])
        while pending:
            m = pending[0]
            if not m.running:
                raise EtcdError(f"etcd {m.name} exited early; see {m.log_path}:\n{_tail(m.log_path)}")
            if _healthy(m.client_url):
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise EtcdError(f"etcd {m.name} not healthy within {timeout}s; see {m.log_path}")
            time.sleep(0.05)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        m = self.member(name)
        if m.proc is not None and m.proc.poll() is None:
            m.proc.send_signal(sig)
            try:
                m.proc.wait(10)
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait(5)

    def restart(self, name: str, timeout: float = 20.0) -> None:
        m = self.member(name)
        self._spawn(m, "existing")
        self.wait_healthy(timeout, [m])

    def leader(self) -> str | None:
        """Name of the member that is leader now, as the members themselves report it."""
        ids: dict[int, str] = {}
        leader_id = None
        for m in self.members:
            if not m.running:
                continue
            try:
                out = subprocess.run(
                    ["etcdctl", "--endpoints", m.client_url, "endpoint", "status", "-w", "json"],
                    capture_output=True, timeout=5, check=True,
                ).stdout  # fmt: skip
            except (subprocess.SubprocessError, OSError):
                continue
            st = json.loads(out)[0]["Status"]
            ids[int(st["header"]["member_id"])] = m.name
            leader_id = int(st["leader"])
        return ids.get(leader_id) if leader_id is not None else None

    def stop(self) -> None:
        for m in self.members:
            if m.proc is None:
                continue
            if m.proc.poll() is None:
                m.proc.terminate()
                try:
                    m.proc.wait(10)
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait(5)
            m.proc = None

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as r:
            return bool(json.loads(r.read()).get("health") == "true")
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _tail(path: Path, n: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
