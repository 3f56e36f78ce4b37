"""The admin streams' fanout: bounded per-subscriber queues that drop the oldest and say how many, replay without a
gap, and publishers on other threads."""

from __future__ import annotations

import asyncio
import threading

from dpfd.admin.fanout import Fanout, Missed, Synced


async def drain(sub: object, n: int) -> list[object]:
    return [await asyncio.wait_for(sub.next(), 5) for _ in range(n)]  # type: ignore[attr-defined]


async def test_a_slow_subscriber_loses_the_oldest_and_is_told_how_many() -> None:
    fan: Fanout[int] = Fanout(history=5, per_subscriber=3)
    with fan.subscribe() as slow, fan.subscribe() as other:
        for i in range(8):
            fan.publish(i)
        assert await drain(slow, 4) == [Missed(5), 5, 6, 7]
        fan.publish(8)
        assert await drain(slow, 1) == [8]  # caught up: nothing more is missed
        assert await drain(other, 4) == [Missed(6), 6, 7, 8]  # it read nothing: lost one more
    assert fan.subscribers == 0
    assert fan.recent() == [4, 5, 6, 7, 8]


async def test_replay_then_synced_then_live_without_gap_or_repeat() -> None:
    fan: Fanout[str] = Fanout(history=10, per_subscriber=4)
    for word in ("a", "b", "c"):
        fan.publish(word)
    with fan.subscribe(replay=2, synced=True) as sub:
        fan.publish("d")
        assert await drain(sub, 4) == ["b", "c", Synced(), "d"]


async def test_publishers_on_other_threads_wake_the_reader() -> None:
    fan: Fanout[int] = Fanout(per_subscriber=1000)
    with fan.subscribe() as sub:
        threads = [
            threading.Thread(target=lambda base=b: [fan.publish(base + i) for i in range(100)]) for b in (0, 1000)
        ]
        for t in threads:
            t.start()
        got = await drain(sub, 200)
        for t in threads:
            t.join()
    assert sorted(got) == [*range(100), *range(1000, 1100)]  # type: ignore[type-var]
