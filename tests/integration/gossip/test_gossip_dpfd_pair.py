"""Two real dpfd processes (a host and its DPU) with gossip on and a real etcd: they find each other through the
gossip addresses in their etcd member keys, a SIGTERM'd one is seen to leave, a SIGKILL'd one to fail within the
time memberlist's local profile allows, and a restarted one to come back. SIGHUP reloads the key file.

What each dpfd sees is read from its log: the gossip member logs every membership change with the member's name.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from dpfd.gossip.agent import GossipAgent
from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import Keyring
from dpfd.gossip.lifeguard import suspicion_timeout
from dpfd.gossip.meta import MemberMeta
from dpfd.sim.ports import free_port
from dpfd.store import Store, keys
from tests.integration.provisioning.dpfd_process import DpfdProcess
from tests.waiting import eventually

HOST = "worker-1"
DPU = "worker-1-0000-03-00"
PCI = "0000-03-00"
LOCAL = GossipConfig.local()


def write_keys(path: Path, *keys: bytes) -> Path:
    path.write_text("".join(base64.b64encode(k).decode() + "\n" for k in keys))
    path.chmod(0o600)
    return path


def dpfd_config(home: Path, node: str, role: str, endpoints: list[str], key_file: Path, port: int) -> dict[str, Any]:
    config: dict[str, Any] = {
        "node": node,
        "role": role,
        "etcd": {"endpoints": endpoints},
        "stateDir": str(home / "state"),
        "runtimeDir": str(home / "run"),
        "sysfsRoot": str(home / "sys"),
        "sessionTTL": 2,
        "gossip": {
            "enabled": True,
            "bind": f"127.0.0.1:{port}",
            "profile": "local",
            "keyFile": str(key_file),
            "rejoinInterval": 0.5,
        },
    }
    if role == "dpu":
        config["dpu"] = {"hostNode": HOST, "pciAddress": PCI}
    return config


def sightings(proc: DpfdProcess, change: str, member: str) -> int:
    """How often `proc` logged `member` as joined / left / failed."""
    text = proc.log_path.read_text() if proc.log_path.exists() else ""
    return text.count(f'msg="gossip member {change}" member={member} ')


async def sees(proc: DpfdProcess, change: str, member: str, count: int, within: float) -> float:
    """Wait until `proc` has logged `member` as `change` `count` times; returns when (monotonic) it was seen."""
    try:
        await eventually(
            lambda: sightings(proc, change, member) >= count, within, f"{proc.node} sees {member} {change}"
        )
    except AssertionError as e:
        raise AssertionError(f"{e}\n--- {proc.node} log:\n{proc.log()}") from None
    return time.monotonic()


def pair(tmp_path: Path, endpoints: list[str]) -> tuple[DpfdProcess, DpfdProcess, dict[str, int]]:
    """A host dpfd and its DPU's dpfd with one key, each on its own loopback port (kept across restarts)."""
    key_file = write_keys(tmp_path / "gossip.key", os.urandom(32))
    ports = {HOST: free_port(), DPU: free_port()}
    procs = [
        DpfdProcess(tmp_path / node, dpfd_config(tmp_path / node, node, role, endpoints, key_file, ports[node]))
        for node, role in ((HOST, "host"), (DPU, "dpu"))
    ]
    return procs[0], procs[1], ports


async def test_host_and_dpu_dpfds_find_each_other_through_etcd_and_a_killed_one_fails_then_returns(
    tmp_path: Path, store: Store, etcd_endpoints: list[str]
) -> None:
    host, dpu, ports = pair(tmp_path, etcd_endpoints)
    try:
        await asyncio.gather(host.start(), dpu.start())
        # Each registers its gossip address in its member key: the seeds the other joins through.
        for node in (HOST, DPU):
            value = await eventually(functools.partial(_member, store, node), 20.0, f"{node} registered")
            assert value["gossip"] == f"127.0.0.1:{ports[node]}", value
        await sees(host, "joined", DPU, 1, 20.0)
        await sees(dpu, "joined", HOST, 1, 20.0)

        # SIGKILL: nobody says goodbye; the failure detector finds out. The local profile's bound: a probe round
        # (awareness can double it), the UDP probe and TCP fallback, then the suspicion timeout of a 2-member cluster.
        suspicion = suspicion_timeout(LOCAL.suspicion_mult, 2, LOCAL.probe_interval)
        bound = 2 * LOCAL.probe_interval + LOCAL.probe_timeout + LOCAL.tcp_timeout + suspicion
        bound += 2.0  # slack for a busy machine
        await dpu.kill()
        killed = time.monotonic()
        failed = await sees(host, "failed", DPU, 1, bound + 10.0)
        assert failed - killed <= bound, f"failure seen after {failed - killed:.1f}s, expected within {bound:.1f}s"
        assert failed - killed >= suspicion - 0.5, "declared failed before the suspicion timeout could run out"
        assert sightings(host, "left", DPU) == 0, host.log()

        # Back at the same address (a new incarnation refutes the old one's death): the host sees it join again.
        await dpu.start()
        await sees(host, "joined", DPU, 2, 20.0)
        assert await dpu.terminate() == 0, dpu.log()
        assert await host.terminate() == 0, host.log()
    finally:
        await asyncio.gather(host.cleanup(), dpu.cleanup())


async def test_a_dpfd_stopped_with_sigterm_is_seen_leaving_not_failing(
    tmp_path: Path, store: Store, etcd_endpoints: list[str]
) -> None:
    host, dpu, _ = pair(tmp_path, etcd_endpoints)
    try:
        await asyncio.gather(host.start(), dpu.start())
        await sees(host, "joined", DPU, 1, 20.0)
        # SIGTERM: a graceful leave, seen as left (not failed), before its member key goes.
        assert await dpu.terminate() == 0, dpu.log()
        await sees(host, "left", DPU, 1, 10.0)
        assert sightings(host, "failed", DPU) == 0, host.log()
        # The host's own view, through its admin socket, as an operator would ask for it.
        view = await dpfctl_members(tmp_path / HOST / "run" / "admin.sock")
        assert view[DPU]["state"] == "left" and view[HOST]["state"] == "alive", view
        # Back at the same address: the host sees it join again.
        await dpu.start()
        await sees(host, "joined", DPU, 2, 20.0)
        view = await dpfctl_members(tmp_path / HOST / "run" / "admin.sock")
        assert view[DPU]["state"] == "alive", view
        assert (view[DPU]["role"], view[DPU]["host"]) == ("dpu", HOST), view
        assert await dpu.terminate() == 0, dpu.log()
        assert await host.terminate() == 0, host.log()
    finally:
        await asyncio.gather(host.cleanup(), dpu.cleanup())


async def test_sighup_reloads_the_key_file(tmp_path: Path, store: Store, etcd_endpoints: list[str]) -> None:
    old, new = os.urandom(32), os.urandom(32)
    key_file = write_keys(tmp_path / "gossip.key", old)
    host = DpfdProcess(tmp_path / HOST, dpfd_config(tmp_path / HOST, HOST, "host", etcd_endpoints, key_file,
                                                   free_port()))  # fmt: skip
    # A member that knows only the new key: the dpfd cannot hear it until its key file holds that key too.
    meta = MemberMeta("controller", "observer", "test", time.time())
    observer = GossipAgent("observer", meta, Keyring([new]), config=LOCAL, bind="127.0.0.1:0")
    try:
        await host.start()
        seed = (await eventually(lambda: _member(store, HOST), 20.0, "host registered"))["gossip"]
        await eventually(lambda: "event=gossip_started" in host.log(), 20.0, "gossip started")
        await observer.start()
        assert await observer.join([seed]) == 0, "a member with another key must not get an answer"
        write_keys(key_file, new, old)  # rotation, step 1 and 2: the new key installed and signing
        assert host.proc is not None
        host.proc.send_signal(signal.SIGHUP)
        await eventually(lambda: "event=gossip_keys_reloaded" in host.log(), 10.0, "keys reloaded")
        assert "keys=2" in host.log()
        assert await observer.join([seed]) == 1
        assert await observer.wait_for(lambda ms: any(m.name == HOST and m.alive for m in ms), 5.0)
        await sees(host, "joined", "observer", 1, 10.0)
        assert await host.terminate() == 0, host.log()
    finally:
        await observer.stop()
        await host.cleanup()


async def dpfctl_members(socket: Path) -> dict[str, dict[str, Any]]:
    """`dpfctl members -o json` against a dpfd's admin socket, by member name."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dpfd.cli.main", "members", "--socket", str(socket), "-o", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30.0)
    assert proc.returncode == 0, err.decode()
    return {m["name"]: m for m in json.loads(out)}


async def _member(store: Store, node: str) -> dict[str, Any] | None:
    kv = await store.get(keys.member_key(node))
    if kv is None:
        return None
    value: dict[str, Any] = json.loads(kv.value)
    return value if "gossip" in value else None
