"""NodeAgent when etcd goes away for longer than the session TTL, and comes back."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from dpfd_harness import FAST, dpu_ref, intent, make_config, put_intent, wait_for, wait_report

from dpfd.agent import NodeAgent
from dpfd.host.dpu_intent import DpuIntentStore, ownership_reconcilers
from dpfd.sim.etcd import EtcdCluster
from dpfd.store import Store, keys

NODE = "host-r"
TTL = 2.0


async def test_agent_recovers_after_etcd_restart(tmp_path: Path) -> None:
    cluster = EtcdCluster(tmp_path / "etcd", size=1)  # private: this test kills it
    await asyncio.to_thread(cluster.start)
    store = await Store.connect(cluster.endpoints)
    cfg = make_config(tmp_path, NODE, cluster.endpoints, ttl=TTL)
    changes: list[bool] = []
    opts = replace(FAST, on_connection_change=changes.append)
    agent = NodeAgent(cfg, store, ownership_reconcilers(NODE, cfg.state_dir), opts)
    try:
        await put_intent(store, intent(NODE, "dpu-1"))
        await agent.start()
        r = await wait_report(store, NODE, dpu_ref("dpu-1"), lambda r: r["phase"] == "Initializing")
        token1 = r["fencingToken"]
        assert token1 == agent.fencing_token > 0

        await asyncio.to_thread(cluster.kill, "m0")
        await wait_for(lambda: asyncio.sleep(0, agent.connected), lambda c: not c, within=4 * TTL, what="lost")
        # The machine is kept as it is while etcd is away.
        assert DpuIntentStore(cfg.state_dir).load(dpu_ref("dpu-1")) is not None
        assert agent.view.get(dpu_ref("dpu-1")) is not None

        await asyncio.to_thread(cluster.restart, "m0")
        await put_intent(store, intent(NODE, "dpu-2"))  # written while the agent is (re)connecting

        await wait_for(lambda: asyncio.sleep(0, agent.registrations), lambda n: n >= 2, within=15, what="re-register")
        token2 = agent.fencing_token
        assert token2 > token1
        member = await store.get(keys.member_key(NODE))
        assert member is not None and member.mod_revision == token2
        # The new intent is picked up, and the old one is re-reported under the new token.
        for name in ("dpu-1", "dpu-2"):
            r = await wait_report(store, NODE, dpu_ref(name), lambda r: r["fencingToken"] == token2)
            assert r["phase"] == "Initializing"
        assert changes == [True, False, True]
    finally:
        await agent.stop(2.0)
        await store.close()
        await asyncio.to_thread(cluster.stop)
