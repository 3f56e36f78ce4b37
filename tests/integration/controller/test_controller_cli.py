"""`dpf-controller run` as a process: flags, structured logs, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
import time
from pathlib import Path

from controller_harness import KubeEnv, dpuset_obj, intents, kube, node_obj, store, wait_until

from dpfd.gossip.agent import GossipAgent
from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import Keyring
from dpfd.gossip.meta import MemberMeta
from dpfd.sim.ports import free_port
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
            # `systemctl reload` without gossip: logged, and the process goes on
            proc.send_signal(signal.SIGHUP)
            await wait_until(lambda: "reload ignored" in log_path.read_text(), within=10, what="SIGHUP handled")
            assert proc.returncode is None
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


async def test_sighup_reloads_the_gossip_key_file(kube: KubeEnv, etcd_endpoints: list[str], tmp_path: Path) -> None:
    old, new = os.urandom(32), os.urandom(32)
    key_file = tmp_path / "gossip.key"
    key_file.write_text(base64.b64encode(old).decode() + "\n")
    key_file.chmod(0o600)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    log_path = tmp_path / "controller.log"
    # A member that knows only the new key: the controller cannot hear it until its key file holds that key too.
    observer = GossipAgent("observer", MemberMeta("host", "observer", "test", time.time()), Keyring([new]),
                           config=GossipConfig.local(), bind="127.0.0.1:0")  # fmt: skip
    await observer.start()
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "controller.main", "run",
            "--kubeconfig", str(kube.kubeconfig), "--etcd-endpoints", ",".join(etcd_endpoints), "--id", "hup-test",
            "--gossip-key-file", str(key_file), "--gossip-bind", f"127.0.0.1:{port}", "--gossip-profile", "local",
            cwd=str(REPO), env=env, stdout=log_file, stderr=log_file,
        )  # fmt: skip
        try:
            await wait_until(lambda: "gossip started" in log_path.read_text(), within=20, what="gossip started")
            assert await observer.join([f"127.0.0.1:{port}"]) == 0, "another key must get no answer"
            key_file.write_text(f"{base64.b64encode(new).decode()}\n{base64.b64encode(old).decode()}\n")
            proc.send_signal(signal.SIGHUP)
            await wait_until(lambda: 'msg="gossip keys reloaded"' in log_path.read_text(), within=10, what="reload")
            assert await observer.join([f"127.0.0.1:{port}"]) == 1
            assert await observer.wait_for(lambda ms: any(m.name == "hup-test" and m.alive for m in ms), 5.0)
        finally:
            await observer.stop()
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            rc = await asyncio.wait_for(proc.wait(), 20)
    assert rc == 0, log_path.read_text()
