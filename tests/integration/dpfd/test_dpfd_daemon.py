"""dpfd as a real process under an emulated systemd: READY, WATCHDOG, SIGTERM mid-work, STOPPING."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from dpfd_harness import NS, intent, wait_for

from dpfd.api.intents import Intent
from dpfd.host.provisioning.progress import Progress
from dpfd.sim.ports import free_port
from dpfd.store import Put, Store, keys

REPO = Path(__file__).resolve().parents[3]


class NotifyListener:
    """The systemd side of sd_notify: a datagram socket drained as messages arrive, like systemd does."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[tuple[float, str]] = []
        self._arrived = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._drain)

    def _drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            self.messages.append((time.monotonic(), data.decode()))
            self._arrived.set()

    def times(self, line: str) -> list[float]:
        return [t for t, m in self.messages if line in m.splitlines()]

    async def until(self, line: str, within: float, count: int = 1) -> list[float]:
        """Wait until `count` messages with `line` have arrived; returns when each did."""
        deadline = time.monotonic() + within
        while len(self.times(line)) < count:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                got = [m for _, m in self.messages]
                raise AssertionError(f"not {count}x {line} within {within}s; got {got}") from None
        return self.times(line)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


class Daemon:
    """`python -m dpfd.daemon --config ... run` with NOTIFY_SOCKET and a watchdog, logs to a file."""

    def __init__(self, tmp_path: Path, node: str, endpoints: list[str]) -> None:
        self.node = node
        self.state_dir = tmp_path / "state"
        self.config = tmp_path / "dpfd.yaml"
        self.config.write_text(
            f"node: {node}\nrole: host\netcd:\n  endpoints: {json.dumps(endpoints)}\n"
            f"stateDir: {self.state_dir}\nruntimeDir: {tmp_path / 'run'}\nsessionTTL: 5\nlogLevel: debug\n"
        )
        self.listener = NotifyListener(tmp_path / "notify.sock")
        self.log_path = tmp_path / "dpfd.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> asyncio.subprocess.Process:
        env = {**os.environ, "NOTIFY_SOCKET": str(self.listener.path), "PYTHONPATH": str(REPO)}
        env["WATCHDOG_USEC"] = "300000"  # a ping every 0.15 s
        env.pop("DPFD_CONFIG", None)
        env.pop("WATCHDOG_PID", None)
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dpfd.daemon", "--config", str(self.config), "run",
                cwd=REPO, env=env, stdout=log, stderr=log,
            )  # fmt: skip
        return self.proc

    async def terminate(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 20.0)

    async def cleanup(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        self.listener.close()

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
async def daemon(etcd_endpoints: list[str], tmp_path: Path) -> AsyncIterator[Daemon]:
    d = Daemon(tmp_path, "host-d", etcd_endpoints)
    try:
        yield d
    finally:
        await d.cleanup()


async def put_intents(store: Store, node: str, n: int) -> None:
    await store.commit([Put(keys.intent_key(node, it.ref), it.model_dump_json()) for it in _intents(node, n)])


def _intents(node: str, n: int) -> list[Intent]:
    return [intent(node, f"dpu-{i}") for i in range(n)]


async def test_ready_watchdog_and_clean_stop(store: Store, daemon: Daemon) -> None:
    await put_intents(store, daemon.node, 3)
    proc = await daemon.start()
    await daemon.listener.until("READY=1", 20.0)
    member = await wait_for(lambda: store.get(keys.member_key(daemon.node)), lambda m: m is not None, what="member")
    assert member is not None and json.loads(member.value)["pid"] == proc.pid

    # The watchdog keeps pinging at about WATCHDOG_USEC/2.
    seen = len(daemon.listener.times("WATCHDOG=1"))
    pings = (await daemon.listener.until("WATCHDOG=1", 5.0, count=seen + 5))[seen:]
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert all(0.05 < g < 0.6 for g in gaps), gaps

    await wait_for(
        lambda: store.get_prefix(keys.reports_prefix(daemon.node)), lambda r: len(r[0]) == 3, what="3 reports"
    )
    assert await daemon.terminate() == 0, daemon.log()[-3000:]
    await daemon.listener.until("STOPPING=1", 1.0)
    assert await store.get(keys.member_key(daemon.node)) is None, "member key survives a clean stop"

    log = daemon.log()
    assert "event=ready" in log and "event=agent_stopped" in log
    assert f'event=reconciled node={daemon.node} object="DPU {NS}/dpu-0" generation=1' in log
    for line in log.splitlines():
        assert line.startswith("ts=") and " event=" in line, line


async def test_sigterm_mid_work_finishes_in_flight_and_leaves_nothing_half_written(
    store: Store, daemon: Daemon
) -> None:
    n = 400
    await put_intents(store, daemon.node, n)
    await daemon.start()
    await daemon.listener.until("READY=1", 20.0)
    assert await daemon.terminate() == 0, daemon.log()[-3000:]
    await daemon.listener.until("STOPPING=1", 1.0)

    assert await store.get(keys.member_key(daemon.node)) is None, "member key survives SIGTERM"
    files = list(daemon.state_dir.rglob("*"))
    assert not [f for f in files if f.name.endswith(".tmp")], "a temp state file was left behind"
    progress = [f for f in files if f.is_file() and f.parent.parent.name == "provisioning"]
    owned = {f.stem for f in progress if Progress.model_validate_json(f.read_bytes()).phase == "Initializing"}
    kvs, _ = await store.get_prefix(keys.reports_prefix(daemon.node))
    reported = {kv.key.rsplit("/", 1)[1] for kv in kvs if json.loads(kv.value)["phase"] == "Initializing"}
    # Every DPU taken over before the stop was reported (in-flight work finished, reports flushed)...
    assert owned == reported
    # ...and the stop took no new work.
    assert len(owned) < n, "SIGTERM came after all the work was done: the test did not test mid-work"


async def test_sigterm_while_etcd_is_unreachable(tmp_path: Path) -> None:
    d = Daemon(tmp_path, "host-x", [f"http://127.0.0.1:{free_port()}"])  # nothing listens there
    try:
        await d.start()
        await d.listener.until("STATUS=connecting to etcd", 10.0)  # SIGTERM lands mid connect attempt
        t0 = time.monotonic()
        assert await d.terminate() == 0, d.log()[-3000:]
        assert time.monotonic() - t0 < 3.0, "stopping waited for the etcd connect attempt"
        await d.listener.until("STOPPING=1", 1.0)
        assert d.listener.times("READY=1") == []
    finally:
        await d.cleanup()
