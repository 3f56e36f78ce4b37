"""A real partition: members in two network namespaces joined by one veth pair; the veth goes down and comes back."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from members import Members, write_keys

from tests.waiting import eventually

pytestmark = pytest.mark.timeout(180)

A_IP, B_IP = "198.51.100.1", "198.51.100.2"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def two_netns() -> Iterator[tuple[str, str, str]]:
    """(netns A, netns B, the veth end in A)."""
    tag = uuid.uuid4().hex[:6]
    ns_a, ns_b, veth_a, veth_b = f"gsa-{tag}", f"gsb-{tag}", f"ga{tag}", f"gb{tag}"
    ip("netns", "add", ns_a)
    ip("netns", "add", ns_b)
    try:
        ip("link", "add", veth_a, "netns", ns_a, "type", "veth", "peer", "name", veth_b, "netns", ns_b)
        for ns, dev, addr in ((ns_a, veth_a, A_IP), (ns_b, veth_b, B_IP)):
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        yield ns_a, ns_b, veth_a
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True, timeout=10)


@pytest.fixture
def members(tmp_path: Path) -> Iterator[Members]:
    ms = Members(tmp_path, write_keys(tmp_path / "keys", b"p" * 32))
    try:
        yield ms
    finally:
        ms.stop_all()


def everyone_sees(members: Members, names: list[str], state: str) -> bool:
    return all(p.sees(n, state) for p in members.procs for n in names if n != p.name)


async def test_partition_by_a_downed_veth_then_heal(members: Members, two_netns: tuple[str, str, str]) -> None:
    ns_a, ns_b, veth_a = two_netns
    seed = f"{A_IP}:7946"
    side_a = [
        members.start("a1", f"{A_IP}:7946", [], netns=ns_a),
        members.start("a2", f"{A_IP}:7947", [seed], netns=ns_a),
    ]
    side_b = [
        members.start("b1", f"{B_IP}:7946", [seed], netns=ns_b),
        members.start("b2", f"{B_IP}:7947", [seed], netns=ns_b),
    ]
    names = ["a1", "a2", "b1", "b2"]
    await eventually(lambda: everyone_sees(members, names, "alive"), within=20, what="4 members converged")

    ip("-n", ns_a, "link", "set", veth_a, "down")

    def split() -> bool:
        # From each member's change log: a member declared dead is forgotten once gossip_to_the_dead_time has passed,
        # so its view may no longer list it; the log keeps the verdict.
        across = all(p.logged("failed", o.name) for side, other in ((side_a, side_b), (side_b, side_a))
                     for p in side for o in other)  # fmt: skip
        within = not any(p.logged("failed", q.name) for side in (side_a, side_b) for p in side for q in side)
        return across and within

    await eventually(split, within=40, what="each side declares the other dead, and stays whole itself")

    ip("-n", ns_a, "link", "set", veth_a, "up")
    await eventually(lambda: everyone_sees(members, names, "alive"), within=40, what="membership converged after heal")
