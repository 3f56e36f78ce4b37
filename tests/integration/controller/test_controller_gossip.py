"""The controller's gossip member: seeds from the dpfds' member keys in etcd, and the DPU conditions
`DPUDaemonReachable` / `HostDaemonReachable` that follow the DPU's and the host's dpfd within seconds — with the
emulated Kubernetes API, a real etcd, a real controller replica and two real GossipAgents standing in for the dpfds."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

from controller_harness import KubeEnv, Replica, dpuset_obj, kube, node_obj, store, wait_until, write_report

from controller.reachability import DPU_DAEMON_REACHABLE, HOST_DAEMON_REACHABLE
from dpfd.api.conditions import Condition
from dpfd.config import GossipSettings
from dpfd.gossip.agent import GossipAgent
from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import Keyring
from dpfd.gossip.meta import MemberMeta
from dpfd.store import Store
from dpfd.store import keys as store_keys

__all__ = ["kube", "store"]  # fixtures

KEY = bytes(range(32))
HOST = "worker-1"
DPU = "worker-1-0000-03-00"  # DPF's name for the DPU at 0000-03-00 on worker-1; its dpfd is named after it
DETECTION = 15.0  # seconds: GossipConfig.local() declares a silent member dead in about 5


def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "gossip.keys"
    path.write_text(f"# the fleet's gossip key\n{base64.b64encode(KEY).decode()}\n")
    path.chmod(0o600)
    return path


async def dpfd_member(name: str, meta: MemberMeta, store: Store, bind: str = "127.0.0.1:0") -> GossipAgent:
    """What a dpfd does: start its member, and put its gossip address in its member key for others to seed from."""
    agent = GossipAgent(name, meta, Keyring([KEY]), config=GossipConfig.local(), bind=bind)
    await agent.start()
    value = {"node": meta.node, "role": meta.role, "version": meta.version, "gossip": agent.addr}
    await store.put(store_keys.member_key(meta.node), json.dumps(value))
    return agent


def host_meta() -> MemberMeta:
    return MemberMeta(role="host", node=HOST, version="0.1.0", started=time.time())


def dpu_meta() -> MemberMeta:
    # sysfs spelling of the PCI address; the DPU object says 0000-03-00
    return MemberMeta(role="dpu", node=DPU, version="0.1.0", started=time.time(), host=HOST, pci="0000:03:00.0")


def condition(kube: KubeEnv, type_: str) -> dict[str, Any] | None:
    dpu = kube.dpu(DPU) or {}
    return next((c for c in (dpu.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def is_(kube: KubeEnv, type_: str, status: str, reason: str) -> Any:
    def check() -> dict[str, Any] | None:
        c = condition(kube, type_)
        return c if c is not None and (c["status"], c["reason"]) == (status, reason) else None

    return check


async def start_gossip_replica(kube: KubeEnv, endpoints: list[str], tmp_path: Path, identity: str) -> Replica:
    replica = Replica(kube, endpoints, identity)
    replica.cfg.gossip = GossipSettings(
        enabled=True, key_file=key_file(tmp_path), bind="127.0.0.1:0", profile="local", rejoin_interval=0.5
    )
    return await replica.start()


async def test_dead_and_returning_daemons_become_dpu_conditions(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str], tmp_path: Path
) -> None:
    await kube.server.apply_object(node_obj(HOST))
    host = await dpfd_member(HOST, host_meta(), store)
    dpu = await dpfd_member(DPU, dpu_meta(), store)
    assert await dpu.join([host.addr]) == 1
    replica = await start_gossip_replica(kube, etcd_endpoints, tmp_path, "c1")
    try:
        await wait_until(lambda: replica.elector.is_leader, what="c1 leads")
        gossip = replica.controller.gossip
        assert gossip is not None
        # seeded from the member keys in etcd: the controller joins without being told anyone's address
        assert await gossip.wait_for(lambda ms: sum(m.alive for m in ms) == 3, 10), gossip.members()
        me = gossip.member("c1")
        assert me is not None and me.role == "controller"

        await kube.server.apply_object(dpuset_obj())
        await wait_until(lambda: kube.dpu(DPU), what="the DPU object")
        up = await wait_until(is_(kube, DPU_DAEMON_REACHABLE, "True", "MemberAlive"), what="DPU daemon reachable")
        await wait_until(is_(kube, HOST_DAEMON_REACHABLE, "True", "MemberAlive"), what="host daemon reachable")
        assert DPU in up["message"] and dpu.addr in up["message"]

        # the host dpfd reports on the DPU: its conditions and ours live side by side
        obj = kube.dpu(DPU)
        assert obj is not None
        initialized = Condition(type="Initialized", status="True", reason="HostAgentAccepted")
        await write_report(store, HOST, obj, phase="Initializing", conditions=[initialized], observedGeneration=0)
        await wait_until(lambda: condition(kube, "Initialized"), what="the report's condition")
        assert condition(kube, DPU_DAEMON_REACHABLE) is not None

        # the DPU's dpfd dies (no leave): False within seconds, the host's stays True
        await dpu.stop()
        t0 = time.monotonic()
        failed = await wait_until(
            is_(kube, DPU_DAEMON_REACHABLE, "False", "MemberFailed"), DETECTION, "DPU daemon down"
        )
        assert time.monotonic() - t0 < DETECTION
        assert "declared dead" in failed["message"]
        assert condition(kube, HOST_DAEMON_REACHABLE)["status"] == "True"  # type: ignore[index]

        # a new report does not erase it, and nothing flips it back while the DPU stays down
        await write_report(store, HOST, obj, phase="Initializing", conditions=[initialized], observedGeneration=1)
        await wait_until(
            lambda: (kube.dpu(DPU) or {}).get("status", {}).get("observedGeneration") == 1, what="report 2"
        )
        assert condition(kube, DPU_DAEMON_REACHABLE) == failed
        assert condition(kube, "Initialized") is not None

        # the DPU's dpfd comes back (a new process on the same address, joining as a restarted dpfd would)
        dpu = await dpfd_member(DPU, dpu_meta(), store, bind=dpu.addr)
        await dpu.join([host.addr])
        back = await wait_until(is_(kube, DPU_DAEMON_REACHABLE, "True", "MemberAlive"), DETECTION, "DPU daemon back")
        assert back["lastTransitionTime"] >= failed["lastTransitionTime"]

        # the host's dpfd stops cleanly: it left (or, if its leave went unheard, it failed): not reachable either way
        await host.leave()
        await gossip.wait_for(lambda ms: any(m.name == HOST and m.state in ("left", "dead") for m in ms), DETECTION)
        seen = gossip.member(HOST)
        assert seen is not None
        reason = "MemberLeft" if seen.state == "left" else "MemberFailed"
        await wait_until(is_(kube, HOST_DAEMON_REACHABLE, "False", reason), DETECTION, f"host daemon {seen.state}")
        assert condition(kube, DPU_DAEMON_REACHABLE)["status"] == "True"  # type: ignore[index]
    finally:
        await replica.stop()
        await dpu.stop()
        await host.stop()


async def test_a_new_leader_keeps_what_it_has_not_seen(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str], tmp_path: Path
) -> None:
    """A DPU whose daemons the leader's member never saw keeps its conditions; without gossip there are none."""
    await kube.server.apply_object(node_obj(HOST))
    plain = await Replica(kube, etcd_endpoints, "plain").start()
    try:
        await wait_until(lambda: plain.elector.is_leader, what="plain leads")
        await kube.server.apply_object(dpuset_obj())
        obj = await wait_until(lambda: kube.dpu(DPU), what="the DPU object")
        await write_report(store, HOST, obj, phase="Initializing", observedGeneration=1)
        await wait_until(lambda: (kube.dpu(DPU) or {}).get("status", {}).get("phase"), what="status from the report")
        assert condition(kube, DPU_DAEMON_REACHABLE) is None and condition(kube, HOST_DAEMON_REACHABLE) is None
    finally:
        await plain.stop()

    # a condition written earlier (by another leader) stays while this leader's member knows nothing of the DPU
    earlier = Condition(type=DPU_DAEMON_REACHABLE, status="False", reason="MemberFailed", message="seen by c0")
    obj = kube.dpu(DPU)
    assert obj is not None
    await kube.server.apply_status(
        {**obj, "status": {**obj["status"], "conditions": [earlier.model_dump(mode="json", exclude_none=True)]}}
    )
    replica = await start_gossip_replica(kube, etcd_endpoints, tmp_path, "c2")
    host = await dpfd_member(HOST, host_meta(), store)
    try:
        await wait_until(lambda: replica.elector.is_leader, what="c2 leads")
        await wait_until(is_(kube, HOST_DAEMON_REACHABLE, "True", "MemberAlive"), DETECTION, "host daemon seen")
        kept = condition(kube, DPU_DAEMON_REACHABLE)
        assert kept is not None and (kept["status"], kept["message"]) == ("False", "seen by c0")
    finally:
        await replica.stop()
        await host.stop()
