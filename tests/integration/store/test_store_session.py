"""Sessions (leases kept alive in the background) against a real etcd."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from dpfd.sim.etcd import EtcdCluster
from dpfd.store import Store

Etcdctl = Callable[..., Awaitable[bytes]]


async def test_keepalive_keeps_a_key_alive_past_three_ttls(store: Store) -> None:
    session = await store.session(ttl=1)
    await store.put("/s/alive", "x", lease=session.lease_id)
    lost_early = asyncio.create_task(session.lost.wait())
    done, _ = await asyncio.wait({lost_early}, timeout=3.5)  # the span under test: 3.5 TTLs
    lost_early.cancel()
    assert not done, f"session lost: {session.lost_reason}"
    kv = await store.get("/s/alive")
    assert kv is not None and kv.lease == session.lease_id
    assert await store.time_to_live(session.lease_id) >= 0
    assert store.stats.lease_ops >= 6  # about three keepalives a TTL were answered
    await session.close()
    assert await store.get("/s/alive") is None  # close revokes: the key goes at once
    assert session.lost.is_set() and session.lost_reason == "closed"


async def test_lost_fires_when_the_lease_is_revoked_elsewhere(store: Store, etcdctl: Etcdctl) -> None:
    session = await store.session(ttl=2)
    fired: list[str] = []
    session.add_lost_callback(lambda: fired.append("cb"))
    await store.put("/s/k", "x", lease=session.lease_id)
    await etcdctl(store.endpoint, "lease", "revoke", f"{session.lease_id:x}")
    # The next keepalive (within ttl/3) is answered with TTL 0.
    await asyncio.wait_for(session.lost.wait(), timeout=2)
    assert fired == ["cb"]
    assert "expired or revoked" in session.lost_reason
    assert await store.get("/s/k") is None


async def test_lost_fires_when_etcd_is_gone_past_the_ttl(etcd_private: EtcdCluster) -> None:
    async with await Store.connect(etcd_private.endpoints, request_timeout=1) as store:
        session = await store.session(ttl=1)
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(etcd_private.kill, "m0", signal.SIGKILL)
        killed_at = loop.time()
        await asyncio.wait_for(session.lost.wait(), timeout=3)
        waited = loop.time() - killed_at
        # Keepalives go every ttl/3, so the last acknowledged one left at most ttl/3 before the kill.
        assert 0.6 <= waited <= 1.5, waited
        assert "no keepalive acknowledged" in session.lost_reason
