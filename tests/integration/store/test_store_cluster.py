"""The headline guarantee on a 3-member cluster: a watcher sees every revision exactly once, in order,
while a writer keeps writing and a member is SIGKILLed mid-stream (the leader, or the watcher's own)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

import pytest

from dpfd.sim.etcd import EtcdCluster
from dpfd.store import Store, WatchEvent

Eventually = Callable[[Callable[[], Awaitable[bool]], float, str], Awaitable[None]]

N = 2000
PREFIX = "/seq/"

pytestmark = pytest.mark.cluster


def _ordered(cluster: EtcdCluster, first: str) -> list[str]:
    """The cluster's endpoints with member `first` first, so a Store starts on that member."""
    return [cluster.member(first).client_url] + [m.client_url for m in cluster.members if m.name != first]


async def _write_and_watch(
    cluster: EtcdCluster, writer_on: str, watcher_on: str, victim: str, eventually: Eventually
) -> None:
    async with (
        await Store.connect(_ordered(cluster, writer_on)) as writer,
        await Store.connect(_ordered(cluster, watcher_on)) as reader,
    ):
        assert reader.endpoint == cluster.member(watcher_on).client_url
        watch = reader.watch_prefix(PREFIX)
        seen: list[WatchEvent] = []

        async def consume() -> None:
            async for ev in watch:
                seen.append(ev)

        consumer = asyncio.create_task(consume())

        async def listed() -> bool:
            return bool(seen)

        await eventually(listed, 10, "the watch's initial RESET")
        kill: asyncio.Future[None] | None = None
        last = 0
        for i in range(N):
            if i == N // 2:  # mid-stream, without pausing the writer
                kill = asyncio.ensure_future(asyncio.to_thread(cluster.kill, victim, signal.SIGKILL))
            last = await writer.put(f"{PREFIX}{i:05d}", str(i))
        assert kill is not None
        await kill

        async def caught_up() -> bool:
            return bool(seen) and seen[-1].revision >= last

        await eventually(caught_up, 20, f"the watcher to reach revision {last}")
        await watch.close()
        await consumer

        reset, events = seen[0], seen[1:]
        assert reset.type == "RESET" and reset.snapshot == ()
        assert [e.type for e in events] == ["PUT"] * len(events)
        # Every revision exactly once and in order (the writer's puts are the cluster's only writes).
        assert [e.revision for e in events] == list(range(reset.revision + 1, last + 1))
        # Every key arrived, first arrivals in the order written (a retried put may land twice).
        values = [int(e.kv.value) for e in events if e.kv]
        assert sorted(set(values)) == list(range(N))
        assert list(dict.fromkeys(values)) == list(range(N))
        # And the stream is exactly etcd's own history of the prefix.
        async with reader.watch_prefix(PREFIX, start_revision=reset.revision + 1) as history:
            replay: list[WatchEvent] = []
            async for ev in history:
                replay.append(ev)
                if ev.revision >= last:
                    break
        assert replay == events
        if victim == watcher_on:
            assert reader.endpoint != cluster.member(victim).client_url
            assert reader.stats.reconnects >= 1


async def test_watcher_gets_every_revision_when_the_leader_is_killed(
    etcd_cluster3: EtcdCluster, eventually: Eventually
) -> None:
    leader = etcd_cluster3.leader()
    assert leader is not None
    follower = next(m.name for m in etcd_cluster3.members if m.name != leader)
    await _write_and_watch(etcd_cluster3, writer_on=leader, watcher_on=follower, victim=leader, eventually=eventually)


async def test_watcher_gets_every_revision_when_its_own_member_is_killed(
    etcd_cluster3: EtcdCluster, eventually: Eventually
) -> None:
    leader = etcd_cluster3.leader()
    assert leader is not None
    follower = next(m.name for m in etcd_cluster3.members if m.name != leader)
    await _write_and_watch(etcd_cluster3, writer_on=leader, watcher_on=follower, victim=follower, eventually=eventually)
