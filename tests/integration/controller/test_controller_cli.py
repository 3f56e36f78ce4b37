"""`dpf-controller run` as a process: flags, structured logs, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from controller_harness import KubeEnv, dpuset_obj, intents, kube, node_obj, store, wait_until

from dpfd.store import Store
from dpfd.store.keys import election_prefix

__all__ = ["kube", "store"]  # fixtures

REPO = Path(__file__).resolve().parents[3]


async def test_run_publishes_then_stops_cleanly_on_sigterm(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str], tmp_path: Path
) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log_path = tmp_path / "controller.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller.main", "run",
            "--kubeconfig", str(kube.kubeconfig), "--etcd-endpoints", ",".join(etcd_endpoints),
            "--id", "cli-test", "--lease-ttl", "5", "--workers", "2", "--log-level", "info",
            cwd=str(REPO), env=env, stdout=log_file, stderr=log_file,
        )  # fmt: skip
        try:

            async def leading() -> bool:
                kvs, _ = await store.get_prefix(election_prefix("controller"))
                return any(kv.value == b"cli-test" for kv in kvs)

            await wait_until(leading, within=20, what="the controller process leads")
            await kube.server.apply_object(dpuset_obj())

            async def one_intent() -> bool:
                return len(await intents(store)) == 1

            await wait_until(one_intent, within=20, what="intent written by the process")
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            rc = await asyncio.wait_for(proc.wait(), 20)
    log = log_path.read_text()
    assert rc == 0, log
    kvs, _ = await store.get_prefix(election_prefix("controller"))
    assert kvs == [], "a stopped leader resigns: no candidacy left behind"
    assert 'object="DPUSet dpf-operator-system/dpuset-a"' in log
    assert 'msg="became leader"' in log and 'msg="dpf-controller stopped"' in log


async def test_bad_flags_are_refused_with_a_reason(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controller.main", "run", "--kubeconfig", "x", "--etcd-endpoints", "http://e:1",
        "--lease-ttl", "0.5", cwd=str(REPO), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"--lease-ttl 0.5: must be at least 2 seconds" in err
