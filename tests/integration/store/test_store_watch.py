"""Watches against a real etcd: list+watch, from a revision, compaction, etcd killed and restarted."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable

from dpfd.sim.etcd import EtcdCluster
from dpfd.store import Put, Store, Watch, WatchEvent

Eventually = Callable[[Callable[[], Awaitable[bool]], float, str], Awaitable[None]]


async def take(watch: Watch, n: int, within: float = 10.0) -> list[WatchEvent]:
    """The next n events of watch, failing the test if they do not come within `within` seconds."""
    out: list[WatchEvent] = []

    async def collect() -> None:
        async for ev in watch:
            out.append(ev)
            if len(out) == n:
                return

    await asyncio.wait_for(collect(), within)
    return out


async def test_list_then_watch(store: Store) -> None:
    await store.put("/w/a/1", "one")
    await store.put("/w/a/2", "two")
    await store.put("/w/ab", "outside the prefix")
    async with store.watch_prefix("/w/a/") as watch:
        [reset] = await take(watch, 1)
        assert reset.type == "RESET"
        assert [(kv.key, kv.value) for kv in reset.snapshot] == [("/w/a/1", b"one"), ("/w/a/2", b"two")]
        assert reset.revision == await store.revision()
        rev_put = await store.put("/w/a/3", "three")
        await store.put("/w/ab", "still outside")
        assert await store.delete("/w/a/1")
        rev_del = await store.revision()
        put, delete = await take(watch, 2)
        assert (put.type, put.revision, put.kv and put.kv.key, put.kv and put.kv.value) == (
            "PUT", rev_put, "/w/a/3", b"three",
        )  # fmt: skip
        assert (delete.type, delete.revision, delete.kv and delete.kv.key) == ("DELETE", rev_del, "/w/a/1")
        assert watch.last_revision == rev_del


async def test_writes_racing_the_start_are_in_the_snapshot_or_the_events_exactly_once(store: Store) -> None:
    """A writer puts while watches start: each sees every write once, in the RESET or as an event."""
    written: list[str] = []

    async def writer() -> None:
        for i in range(300):  # bounded: every write is an event for each watch already started
            await store.put(f"/w/race/{i:04d}", "x")
            written.append(f"/w/race/{i:04d}")

    task = asyncio.create_task(writer())
    watches = [store.watch_prefix("/w/race/") for _ in range(20)]
    try:
        resets = [(await take(w, 1))[0] for w in watches]  # each starts while the writer writes
        assert len({r.revision for r in resets}) > 1, "the watches did not start while the writer wrote"
    finally:
        await task
    last = await store.revision()
    for watch, reset in zip(watches, resets, strict=True):
        assert reset.type == "RESET"
        seen = [kv.key for kv in reset.snapshot]
        revisions = [reset.revision]
        while watch.last_revision < last:
            [ev] = await take(watch, 1)
            assert ev.kv is not None
            seen.append(ev.kv.key)
            revisions.append(ev.revision)
        await watch.close()
        assert seen == written, "a write lost or repeated between the snapshot and the events"
        assert revisions == sorted(set(revisions))


async def test_watch_from_a_revision_replays_history(store: Store) -> None:
    revs = [await store.put(f"/w/h/{i}", str(i)) for i in range(5)]
    async with store.watch_prefix("/w/h/", start_revision=revs[2]) as watch:
        events = await take(watch, 3)
    assert [e.revision for e in events] == revs[2:]
    assert [e.kv.value for e in events if e.kv] == [b"2", b"3", b"4"]


async def test_txn_events_arrive_together_with_one_revision(store: Store) -> None:
    async with store.watch_prefix("/w/t/") as watch:
        await take(watch, 1)
        rev = await store.commit([Put(f"/w/t/{i}", "x") for i in range(10)])
        events = await take(watch, 10)
    assert {e.revision for e in events} == {rev}
    assert [e.kv.key for e in events if e.kv] == [f"/w/t/{i}" for i in range(10)]


async def test_compacted_start_revision_resets_then_continues(store: Store) -> None:
    first = await store.put("/w/c/a", "1")
    await store.put("/w/c/b", "2")
    await store.delete("/w/c/a")
    compacted_at = await store.put("/w/unrelated", "x")
    await store.compact(compacted_at)
    async with store.watch_prefix("/w/c/", start_revision=first) as watch:
        [reset] = await take(watch, 1)
        assert reset.type == "RESET"
        assert reset.revision >= compacted_at
        assert [(kv.key, kv.value) for kv in reset.snapshot] == [("/w/c/b", b"2")]
        after = await store.put("/w/c/c", "3")
        [ev] = await take(watch, 1)
        assert (ev.type, ev.revision) == ("PUT", after)


async def test_many_watches_share_one_store_and_each_sees_only_its_prefix(store: Store) -> None:
    watches = [store.watch_prefix(f"/w/n/node{i:03d}/") for i in range(200)]
    try:
        for w in watches:
            assert (await take(w, 1))[0].type == "RESET"
        await store.commit([Put(f"/w/n/node{i:03d}/intent", f"for {i}") for i in range(200)])
        for i, w in enumerate(watches):
            [ev] = await take(w, 1)
            assert ev.kv is not None and ev.kv.key == f"/w/n/node{i:03d}/intent"
        assert store.stats.watch_events == 200
    finally:
        for w in watches:
            await w.close()


async def test_closed_watch_ends_iteration(store: Store) -> None:
    watch = store.watch_prefix("/w/x/", start_revision=1)
    await watch.close()
    assert [ev async for ev in watch] == []


async def test_watch_survives_etcd_killed_and_restarted(etcd_private: EtcdCluster, eventually: Eventually) -> None:
    async with (
        await Store.connect(etcd_private.endpoints) as writer,
        await Store.connect(etcd_private.endpoints) as reader,
    ):
        watch = reader.watch_prefix("/w/k/")
        seen: list[WatchEvent] = []

        async def consume() -> None:
            async for ev in watch:
                seen.append(ev)

        consumer = asyncio.create_task(consume())
        await eventually(lambda: _has(seen, 0), 5, "the initial RESET")
        before = [await writer.put(f"/w/k/{i}", str(i)) for i in range(20)]
        await eventually(lambda: _has(seen, before[-1]), 5, "the events before the kill")

        await asyncio.to_thread(etcd_private.kill, "m0", signal.SIGKILL)
        await asyncio.to_thread(etcd_private.restart, "m0")
        after = [await writer.put(f"/w/k/{i}", f"again {i}") for i in range(20)]
        await eventually(lambda: _has(seen, after[-1]), 10, "the events after the restart")
        await watch.close()
        await consumer

    assert seen[0].type == "RESET"
    assert [e.revision for e in seen[1:]] == before + after  # none lost, none repeated, in order
    assert reader.stats.reconnects >= 1


async def _has(seen: list[WatchEvent], revision: int) -> bool:
    return bool(seen) and seen[-1].revision >= revision


async def test_requests_and_watch_carry_on_when_the_channel_is_switched(store: Store, eventually: Eventually) -> None:
    # A switch (after a member failed) replaces the channel under whatever is in flight on it: calls get a
    # grace period to finish, then the old channel closes and the watch stream moves to the new one.
    async with store.watch_prefix("/w/s/") as watch:
        [reset] = await take(watch, 1)
        puts = [asyncio.create_task(store.put(f"/w/s/{i:03d}", str(i))) for i in range(100)]
        await asyncio.sleep(0)  # let the puts leave before the switch
        store._conn.switch(store._conn.generation)
        puts += [asyncio.create_task(store.put(f"/w/s/{i:03d}", str(i))) for i in range(100, 200)]

        async def moved() -> bool:
            return store.stats.reconnects >= 1

        await eventually(moved, 5, "the watch stream to move to the new channel")
        puts += [asyncio.create_task(store.put(f"/w/s/{i:03d}", str(i))) for i in range(200, 300)]
        last = max(await asyncio.gather(*puts))  # none fails
        events = await take(watch, last - reset.revision)
    assert [e.revision for e in events] == list(range(reset.revision + 1, last + 1))
    assert {e.kv.key for e in events if e.kv} == {f"/w/s/{i:03d}" for i in range(300)}


async def test_requests_wait_out_a_hung_member(etcd_private: EtcdCluster, eventually: Eventually) -> None:
    member = etcd_private.member("m0")
    assert member.proc is not None
    # request_timeout 6: each attempt gets 1.5 s, so the switch comes after about 3 s; the slack keeps this
    # honest on a loaded 2-core machine (with 4 s the switch and the request's deadline were 1 s apart).
    async with await Store.connect(etcd_private.endpoints, request_timeout=6) as store:
        session = await store.session(ttl=8)
        async with store.watch_prefix("/w/hung/") as watch:
            [reset] = await take(watch, 1)
            os.kill(member.proc.pid, signal.SIGSTOP)  # the member we started: hung, not dead
            try:
                put = asyncio.create_task(store.put("/w/hung/k", "v"))

                async def gave_up_on_the_channel() -> bool:  # two attempts timed out, so it reconnected
                    return store._conn.switches >= 1

                await eventually(gave_up_on_the_channel, 5, "the store to give up on the hung channel")
                assert not put.done()
            finally:
                os.kill(member.proc.pid, signal.SIGCONT)
            revision = await asyncio.wait_for(put, 10)
            # The hung member may apply the timed-out attempts too once it resumes (a retried write can land
            # more than once; see dpfd/store/conn.py), so expect one revision per attempt at most, each seen
            # exactly once and in order.
            events = await take(watch, revision - reset.revision)
            assert [e.revision for e in events] == list(range(reset.revision + 1, revision + 1))
            assert 1 <= len(events) <= 3 and all(e.kv and e.kv.key == "/w/hung/k" for e in events)
        assert not session.lost.is_set()
