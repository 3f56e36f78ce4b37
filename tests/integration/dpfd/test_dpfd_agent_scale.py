"""Many NodeAgents in one process on one Store, as the 1,000-node benchmark runs them."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path

from dpfd_harness import FAST, NS, intent, make_config

from dpfd.agent import NodeAgent
from dpfd.host.dpu_intent import ownership_reconcilers
from dpfd.store import Put, Store, keys

AGENTS = 200


async def test_200_agents_share_one_store(store: Store, etcd_endpoints: list[str], tmp_path: Path) -> None:
    nodes = [f"host-{i:03d}" for i in range(AGENTS)]
    await store.commit([Put(keys.intent_key(n, it.ref), it.model_dump_json()) for n in nodes for it in [intent(n, n)]])
    # One limit for the whole process, as a benchmark process would set it.
    opts = replace(FAST, concurrency=asyncio.Semaphore(32))
    agents = []
    for n in nodes:
        cfg = make_config(tmp_path, n, etcd_endpoints)
        agents.append(NodeAgent(cfg, store, ownership_reconcilers(n, cfg.state_dir), opts))
    t0 = time.monotonic()
    try:
        await asyncio.gather(*(a.start() for a in agents))
        deadline = t0 + 60
        while True:
            kvs, _ = await store.get_prefix(keys.reports_prefix())
            if len(kvs) == AGENTS:
                break
            assert time.monotonic() < deadline, f"only {len(kvs)}/{AGENTS} agents reported within 60 s"
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - t0
        members, _ = await store.get_prefix(keys.MEMBERS_PREFIX)
        assert len(members) == AGENTS
        tokens = {kv.key.rsplit("/", 1)[1]: kv.mod_revision for kv in members}
        for kv in kvs:
            node, ref = keys.parse_node_ref(kv.key, keys.reports_prefix())
            assert ref.namespace == NS and ref.name == node
            assert f'"fencingToken":{tokens[node]}' in kv.value.decode()
        print(f"{AGENTS} agents reported in {elapsed:.2f}s; store stats: {store.stats}")
    finally:
        await asyncio.gather(*(a.stop(5.0) for a in agents))
    members, _ = await store.get_prefix(keys.MEMBERS_PREFIX)
    assert members == []
