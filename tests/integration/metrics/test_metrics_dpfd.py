"""A real dpfd process with /metrics on, real etcd and gossip: the numbers move when an intent is applied."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from dpfd.metrics.parse import Scrape, parse
from dpfd.sim.ports import free_port
from dpfd.store import Store, keys
from tests.integration.dpfd.dpfd_harness import NS, dpu_ref, intent, put_intent, wait_report
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[3]
NODE = "host-m"


class MetricsDaemon:
    """`python -m dpfd.daemon` with metrics and gossip on; its log in a file."""

    def __init__(self, tmp_path: Path, endpoints: list[str]) -> None:
        self.port = free_port()
        key_file = tmp_path / "gossip.key"
        key_file.write_text(base64.b64encode(os.urandom(16)).decode() + "\n")
        key_file.chmod(0o600)
        self.config = tmp_path / "dpfd.yaml"
        self.config.write_text(
            f"node: {NODE}\nrole: host\netcd:\n  endpoints: {json.dumps(endpoints)}\n"
            f"stateDir: {tmp_path / 'state'}\nruntimeDir: {tmp_path / 'run'}\nsessionTTL: 5\n"
            f"metrics:\n  listen: 127.0.0.1:{self.port}\n"
            f"gossip:\n  enabled: true\n  bind: 127.0.0.1:0\n  profile: local\n  keyFile: {key_file}\n"
        )
        self.log_path = tmp_path / "dpfd.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for name in ("DPFD_CONFIG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            env.pop(name, None)
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "dpfd.daemon", "--config", str(self.config), "run",
                cwd=REPO, env=env, stdout=log, stderr=log,
            )  # fmt: skip

    async def scrape(self) -> Scrape | None:
        """The parsed /metrics, or None while nothing answers yet."""
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                return parse(await resp.text())
        except aiohttp.ClientConnectionError:
            assert self.proc is not None and self.proc.returncode is None, self.log()[-3000:]
            return None

    async def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 20.0)

    async def cleanup(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
async def daemon(etcd_endpoints: list[str], tmp_path: Path) -> AsyncIterator[MetricsDaemon]:
    d = MetricsDaemon(tmp_path, etcd_endpoints)
    try:
        yield d
    finally:
        await d.cleanup()


async def _scrape_when(daemon: MetricsDaemon, ok: object, what: str, within: float = 20.0) -> Scrape:
    async def probe() -> Scrape | None:
        s = await daemon.scrape()
        return s if s is not None and ok(s) else None  # type: ignore[operator]

    result: Scrape = await eventually(probe, within, what)
    return result


async def test_dpfd_metrics_move_when_an_intent_is_applied(store: Store, daemon: MetricsDaemon) -> None:
    await daemon.start()
    before = await _scrape_when(daemon, lambda s: s.value("dpf_etcd_session_up") == 1, "registered in etcd")
    assert before.value("dpf_etcd_registrations_total") == 1
    assert before.value("dpf_build_info", component="dpfd", role="host", node=NODE) == 1
    assert (before.value("process_resident_memory_bytes") or 0) > 10e6
    assert (before.value("process_start_time_seconds") or 0) > 1.6e9
    assert before.total("dpf_reconcile_duration_seconds_count", kind="DPU") == 0
    etcd_before = before.total("dpf_etcd_request_duration_seconds_count")
    assert etcd_before > 0, "registering took etcd requests"
    assert before.value("dpf_etcd_request_duration_seconds_count", operation="lease_grant") == 1

    ref = dpu_ref("dpu-m")
    await put_intent(store, intent(NODE, "dpu-m"))
    await wait_report(store, NODE, ref, lambda r: r["phase"] == "Initializing", within=20.0)

    after = await _scrape_when(
        daemon,
        lambda s: s.value("dpf_reported_objects", kind="DPU", phase="Initializing") == 1,
        "the DPU counted in its phase",
    )
    assert (after.value("dpf_reconcile_duration_seconds_count", kind="DPU", result="success") or 0) >= 1
    assert after.value("dpf_reconcile_duration_seconds_bucket", kind="DPU", result="success", le="+Inf") == (
        after.value("dpf_reconcile_duration_seconds_count", kind="DPU", result="success")
    )
    assert after.value("dpf_phase_transitions_total", kind="DPU", phase="Initializing") == 1
    assert after.value("dpf_intents", kind="DPU") == 1
    assert (after.value("dpf_report_commits_total") or 0) >= 1
    # The report went to etcd as a put: the latency histogram of puts moved.
    assert after.total("dpf_etcd_request_duration_seconds_count") > etcd_before
    assert (after.value("dpf_etcd_request_duration_seconds_count", operation="put") or 0) > (
        before.value("dpf_etcd_request_duration_seconds_count", operation="put") or 0
    )
    assert after.total("dpf_etcd_request_errors_total") == 0

    # Gossip: this member sees itself alive and healthy.
    assert (after.value("dpf_gossip_members", state="alive") or 0) >= 1
    assert after.value("dpf_gossip_health_score") == 0
    assert after.value("dpf_gossip_packets_dropped_total", reason="forged") == 0

    for name, fam in after.families.items():
        assert name.startswith(("dpf_", "process_")), name
        assert fam.type in ("counter", "gauge", "histogram") and fam.help, name
        if fam.type == "counter":
            assert name.endswith("_total"), name

    # The intent goes away: the DPU is no longer counted in a phase.
    await store.delete(keys.intent_key(NODE, ref))
    await _scrape_when(
        daemon,
        lambda s: not s.values("dpf_reported_objects", kind="DPU") and s.value("dpf_intents") is None,
        "the released DPU uncounted",
    )
    assert await daemon.stop() == 0, daemon.log()[-3000:]
    log = daemon.log()
    assert "event=metrics_served" in log
    assert f'event=reconciled node={NODE} object="DPU {NS}/dpu-m"' in log
