"""The DPU dpfd's data plane end to end: real etcd, a private OVS, a real NodeAgent in role dpu wired as the daemon
wires it (dataplane_for / reconcilers_for). Intents are written into etcd as the controller writes them; ports and
flows appear on OVS, reports turn Ready, a chain change replaces its flows, an ovs-vswitchd crash is repaired."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dpfd.agent import NodeAgent
from dpfd.api.intents import Intent, ObjectRef
from dpfd.config import DpfdConfig
from dpfd.daemon import dataplane_for, reconcilers_for
from dpfd.dpu.dataplane import Dataplane
from dpfd.dpu.flows.model import chain_cookie
from dpfd.store import Store
from tests.integration.dpfd.dpfd_harness import FAST, put_intent, wait_for, wait_report
from tests.ovs_fixture import PrivateOvs

NODE = "dpu-a"
NS = "dpf-operator-system"
BR = "br-sfc"


@dataclass
class Dpu:
    ovs: PrivateOvs
    store: Store
    agent: NodeAgent
    dataplane: Dataplane

    def flows(self) -> list[str]:
        return [
            line.strip() for line in self.ovs.ofctl("dump-flows", BR, "--no-stats").splitlines() if "actions=" in line
        ]

    def ofport(self, port: str) -> int:
        return int(self.ovs.vsctl("get", "Interface", port, "ofport"))

    def chain_in_ports(self, name: str) -> set[int]:
        cookie = f"cookie={chain_cookie(NS, name):#x}"
        return {int(f.split("in_port=")[1].split(",")[0].split(" ")[0]) for f in self.flows() if cookie in f}


def config(tmp_path: Path, ovs: PrivateOvs, endpoints: list[str]) -> DpfdConfig:
    return DpfdConfig.model_validate({
        "node": NODE, "role": "dpu", "etcd": {"endpoints": endpoints},
        "stateDir": str(tmp_path / "state"), "runtimeDir": str(tmp_path / "run"),
        "dataplane": {"enabled": True, "ovsdb": ovs.db, "portType": "internal", "applyTimeout": 5,
                      "ofctl": ["ovs-ofctl"], "ofctlTarget": ovs.mgmt(BR), "chainRetry": 0.5,
                      "cniSocket": str(tmp_path / "run" / "sfc-cni.sock")},
    })  # fmt: skip


@pytest.fixture
async def dpu(ovs: PrivateOvs, etcd_endpoints: list[str], tmp_path: Path) -> AsyncIterator[Dpu]:
    ovs.add_bridge(BR)
    # A stale chain's flow (its intent was deleted while dpfd was away) and a CNI-made port are there already.
    ovs.ofctl("add-flow", BR, "cookie=0x5ca1e,priority=20,in_port=99,actions=drop")
    ovs.vsctl("add-port", BR, "podveth0", "--", "set", "Interface", "podveth0", "type=internal",
              "external_ids:dpf-id=apps/web-0/net1", "external_ids:dpf-cni=c0ffee/net1")  # fmt: skip
    # And a port of a ServiceInterface deleted while dpfd was away, which nothing declares any more.
    ovs.vsctl("add-port", BR, "pf1hpf", "--", "set", "Interface", "pf1hpf", "type=internal",
              f"external_ids:dpf-id={NS}/gone-{NODE}")  # fmt: skip
    cfg = config(tmp_path, ovs, etcd_endpoints)
    store = await Store.connect(etcd_endpoints)
    dataplane = dataplane_for(cfg, store)
    assert dataplane is not None
    agent = NodeAgent(cfg, store, reconcilers_for(cfg, dataplane), FAST)
    await dataplane.start(agent.ready)
    await agent.start()
    try:
        yield Dpu(ovs, store, agent, dataplane)
    finally:
        await agent.stop(2.0)
        await dataplane.stop()
        await store.close()


def si(name: str, labels: dict[str, str], spec: dict[str, Any]) -> Intent:
    ref = ObjectRef(kind="ServiceInterface", namespace=NS, name=f"{name}-{NODE}")
    return Intent(node=NODE, ref=ref, uid=f"uid-{name}", generation=1, spec={"node": NODE, **spec}, labels=labels)


def chain(name: str, generation: int, *switches: list[str]) -> Intent:
    sw = [{"ports": [{"serviceInterface": {"matchLabels": {"svc": p}}} for p in ports]} for ports in switches]
    ref = ObjectRef(kind="ServiceChain", namespace=NS, name=f"{name}-{NODE}")
    return Intent(node=NODE, ref=ref, uid=f"uid-{name}", generation=generation, spec={"node": NODE, "switches": sw})


def ready(gen: int) -> Any:
    return lambda r: r.get("phase") == "Ready" and r.get("observedGeneration") == gen


INTERFACES = [
    si("p0", {"svc": "p0"}, {"interfaceType": "physical", "physical": {"interfaceName": "p0"}}),
    si("pf0", {"svc": "pf0"}, {"interfaceType": "pf", "pf": {"pfID": 0}}),
    si("vf3", {"svc": "vf3"}, {"interfaceType": "vf", "vf": {"pfID": 0, "vfID": 3}}),
    si("web", {"svc": "web"}, {"interfaceType": "service",
                               "service": {"serviceID": "web", "network": "mybrsfc", "interfaceName": "net1"}}),
]  # fmt: skip


async def test_intents_become_ports_and_flows_and_a_change_replaces_them(dpu: Dpu) -> None:
    for it in INTERFACES:
        await put_intent(dpu.store, it)
    c1 = chain("chain", 1, ["p0", "web"], ["pf0", "vf3"])
    await put_intent(dpu.store, c1)
    for it in INTERFACES:
        await wait_report(dpu.store, NODE, it.ref, ready(1))
    rep = await wait_report(dpu.store, NODE, c1.ref, ready(1))
    assert rep["details"]["flows"] == 4
    ports = {p: dpu.ofport(p) for p in ("p0", "pf0hpf", "pf0vf3", "podveth0")}
    assert dpu.chain_in_ports("chain-dpu-a") == set(ports.values())
    # The stale port goes once every listed intent was reconciled; the CNI's port and the canary stay.
    await wait_for(lambda: asyncio.to_thread(dpu.ovs.vsctl, "list-ports", BR),
                   lambda out: sorted(out.split()) == sorted(["dpfmon0", "dpfmon1", *ports]),
                   what="the stale port pf1hpf removed")  # fmt: skip
    # The stale cookie is gone once the intents were listed.
    await wait_for(lambda: asyncio.to_thread(dpu.flows), lambda fl: not any("0x5ca1e" in f for f in fl),
                   what="the stale chain's flow collected")  # fmt: skip
    # The chain changes: p0 now joins the vf; the old switches' flows are replaced.
    c2 = chain("chain", 2, ["p0", "vf3"])
    await put_intent(dpu.store, c2)
    await wait_report(dpu.store, NODE, c2.ref, ready(2))
    assert dpu.chain_in_ports("chain-dpu-a") == {ports["p0"], ports["pf0vf3"]}
    assert len([f for f in dpu.flows() if f"{chain_cookie(NS, 'chain-dpu-a'):#x}" in f]) == 2


async def test_a_vswitchd_crash_is_repaired(dpu: Dpu) -> None:
    for it in INTERFACES:
        await put_intent(dpu.store, it)
    c1 = chain("chain", 1, ["p0", "pf0"], ["vf3", "web"])
    await put_intent(dpu.store, c1)
    await wait_report(dpu.store, NODE, c1.ref, ready(1))
    before = sorted(dpu.flows())
    assert len(before) == 4
    # The stale port is collected once every listed intent was reconciled: compare ports after that.
    await wait_for(lambda: asyncio.to_thread(dpu.ovs.vsctl, "list-ports", BR), lambda out: "pf1hpf" not in out.split(),
                   what="the stale port pf1hpf removed")  # fmt: skip
    ports = sorted(dpu.ovs.vsctl("list-ports", BR).split())
    await asyncio.to_thread(dpu.ovs.restart_vswitchd, signal.SIGKILL)
    await wait_for(lambda: asyncio.to_thread(lambda: sorted(dpu.flows())), lambda fl: fl == before,
                   what="every flow back after the ovs-vswitchd crash")  # fmt: skip
    assert sorted(dpu.ovs.vsctl("list-ports", BR).split()) == ports
    assert dpu.dataplane.monitor.restarts == 1
    await wait_report(dpu.store, NODE, c1.ref, ready(1))
