"""Election against a real etcd: order of succession, observe, takeover when the leader's process dies."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from dpfd.store import Election, SessionLost, Store

Eventually = Callable[[Callable[[], Awaitable[bool]], float, str], Awaitable[None]]

REPO = Path(__file__).resolve().parents[3]

# A candidate in its own process, so that the test can kill it the hard way.
CANDIDATE = """
import asyncio, sys
from dpfd.store import Election, Store

async def main() -> None:
    store = await Store.connect(sys.argv[1].split(","))
    session = await store.session(ttl=float(sys.argv[2]))
    await Election(store, session, sys.argv[3]).campaign(sys.argv[4])
    print("leader", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def _standing(store: Store, election: Election, n: int) -> bool:
    return len((await store.get_prefix(election.prefix))[0]) >= n


async def test_candidates_succeed_in_order_of_arrival(store: Store, eventually: Eventually) -> None:
    sessions = [await store.session(ttl=5) for _ in range(3)]
    elections = [Election(store, s, "order") for s in sessions]
    await elections[0].campaign("c0")
    assert elections[0].is_leader and await elections[0].leader() == "c0"
    second = asyncio.create_task(elections[1].campaign("c1"))
    await eventually(lambda: _standing(store, elections[0], 2), 5, "c1 to stand")
    third = asyncio.create_task(elections[2].campaign("c2"))
    await eventually(lambda: _standing(store, elections[0], 3), 5, "c2 to stand")
    assert not second.done() and not third.done()
    await elections[0].resign()
    await asyncio.wait_for(second, 5)
    assert not third.done()  # c2 waits on c1's key only
    assert elections[1].is_leader and not elections[0].is_leader
    assert await elections[2].leader() == "c1"
    await elections[1].proclaim("c1 again")
    assert await elections[2].leader() == "c1 again"
    await elections[1].resign()
    await asyncio.wait_for(third, 5)
    assert elections[2].is_leader
    for s in sessions:
        await s.close()
    assert await elections[0].leader() is None


async def test_is_leader_turns_false_when_the_session_is_lost(store: Store) -> None:
    session = await store.session(ttl=2)
    election = Election(store, session, "lose")
    await election.campaign("me")
    assert election.is_leader
    await store.revoke(session.lease_id)
    await asyncio.wait_for(session.lost.wait(), 3)
    assert not election.is_leader
    with pytest.raises(SessionLost):
        await election.campaign("me again")


async def test_takeover_within_the_ttl_when_the_leader_process_is_killed(store: Store, eventually: Eventually) -> None:
    ttl = 1.0
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CANDIDATE, ",".join(store.endpoints), str(ttl), "takeover", "other-process",
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 20) == b"leader\n"
        session = await store.session(ttl=5)
        election = Election(store, session, "takeover")
        observed: list[str | None] = []

        async def observe() -> None:
            async for value in election.observe():
                observed.append(value)

        observer = asyncio.create_task(observe())
        campaign = asyncio.create_task(election.campaign("this-process"))
        await eventually(lambda: _standing(store, election, 2), 5, "this process to stand")
        assert not campaign.done() and await election.leader() == "other-process"

        loop = asyncio.get_running_loop()
        proc.kill()  # SIGKILL: no resign, no revoke; only the lease running out ends its leadership
        killed_at = loop.time()
        await asyncio.wait_for(campaign, ttl + 5)
        took = loop.time() - killed_at
        # The lease ends at most ttl after its last keepalive (sent before the kill), plus etcd's 0.5 s sweep.
        assert took <= ttl + 0.75, took
        assert election.is_leader

        async def observed_takeover() -> bool:
            return observed[-1:] == ["this-process"]

        await eventually(observed_takeover, 5, "observe() to report the new leader")
        assert observed == ["other-process", "this-process"]
        observer.cancel()
        await session.close()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
