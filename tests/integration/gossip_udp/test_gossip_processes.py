"""Several gossip member processes on real UDP and TCP over loopback, every packet sealed."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from members import Members, write_keys

from dpfd.sim.ports import free_port
from tests.waiting import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def members(tmp_path: Path) -> Iterator[Members]:
    ms = Members(tmp_path, write_keys(tmp_path / "keys", b"k" * 32))
    try:
        yield ms
    finally:
        ms.stop_all()


def all_alive(members: Members, names: list[str]) -> bool:
    return all(all(p.sees(n, "alive") for n in names) for p in members.procs if p.name in names)


async def test_five_processes_join_detect_a_crash_and_see_a_leave(members: Members) -> None:
    addrs = [f"127.0.0.1:{free_port()}" for _ in range(5)]
    names = [f"p{i}" for i in range(5)]
    for i, (name, addr) in enumerate(zip(names, addrs, strict=True)):
        members.start(name, addr, join=[addrs[0]] if i else [])
    await eventually(lambda: all_alive(members, names), within=20, what="5 members all alive everywhere")

    crashed = members.procs[3]
    crashed.stop(signal.SIGKILL)
    rest = [p for p in members.procs if p is not crashed]
    await eventually(lambda: all(p.logged("failed", "p3") for p in rest), within=30, what="p3 dead everywhere")

    leaver = members.procs[4]
    assert leaver.stop(signal.SIGTERM) == 0
    rest = [p for p in rest if p is not leaver]
    await eventually(lambda: all(p.logged("left", "p4") for p in rest), within=15, what="p4 left everywhere")
    # the crashed one was declared dead, never "left"; the leaver was never declared dead by anyone
    assert not any(p.logged("left", "p3") or p.logged("failed", "p4") for p in rest)


async def test_a_member_with_the_wrong_key_is_not_let_in(members: Members, tmp_path: Path) -> None:
    a_addr, b_addr, bad_addr = (f"127.0.0.1:{free_port()}" for _ in range(3))
    a = members.start("a", a_addr, join=[])
    b = members.start("b", b_addr, join=[a_addr])
    await eventually(lambda: a.sees("b", "alive") and b.sees("a", "alive"), within=15, what="a and b")
    members.key_file = write_keys(tmp_path / "other-keys", b"o" * 32)
    bad = members.start("intruder", bad_addr, join=[a_addr, b_addr])
    await eventually(lambda: bad.sees("intruder", "alive"), within=10, what="the intruder running")
    # a member with the right key, started after the intruder, gets in while the intruder keeps knocking (it retries
    # every 0.5 s): by then the intruder has had its chances
    members.key_file = tmp_path / "keys"
    c_addr = f"127.0.0.1:{free_port()}"
    members.start("c", c_addr, join=[a_addr])
    await eventually(lambda: a.sees("c", "alive") and b.sees("c", "alive"), within=15, what="c let in")
    assert set(bad.view()) == {"intruder"}
    assert "intruder" not in a.view() and "intruder" not in b.view()
