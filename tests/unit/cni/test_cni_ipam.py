"""The host-local style allocator on a real directory, and the ipam section's checks."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

import pytest

from dpfd.cni import wire
from dpfd.dpu.cni.ipam import HostLocalAllocator, PoolExhausted
from dpfd.dpu.cni.netconf import ConfigError, IpamConfig, parse_netconf


def pool(**kw: object) -> IpamConfig:
    return IpamConfig.model_validate(
        {"type": "dpf-sfc-pool", "subnet": "198.51.100.0/29", "gateway": "198.51.100.1", **kw}
    )


async def test_allocation_is_per_owner_idempotent_and_survives_a_restart(tmp_path: Path) -> None:
    a = HostLocalAllocator(tmp_path)
    first = await a.allocate("net", pool(), "c1/eth1")
    assert first == IPv4Interface("198.51.100.2/29")  # .1 is the gateway
    assert await a.allocate("net", pool(), "c1/eth1") == first
    second = await a.allocate("net", pool(), "c2/eth1")
    assert second != first
    again = HostLocalAllocator(tmp_path)  # a restarted dpfd reads the same files
    assert await again.lookup("net", "c1/eth1") == first.ip
    assert await again.owners("net") == {"c1/eth1": first.ip, "c2/eth1": second.ip}


async def test_exhaustion_release_and_round_robin(tmp_path: Path) -> None:
    a = HostLocalAllocator(tmp_path)
    got = [await a.allocate("net", pool(), f"c{i}/eth1") for i in range(5)]  # .2-.6 of a /29 without .1
    assert sorted(str(g.ip) for g in got) == [f"198.51.100.{n}" for n in range(2, 7)]
    assert await a.free("net", pool()) == 0
    with pytest.raises(PoolExhausted, match="no free address"):
        await a.allocate("net", pool(), "c9/eth1")
    await a.release("net", "c0/eth1")
    await a.release("net", "c0/eth1")  # twice: nothing to do
    assert await a.lookup("net", "c0/eth1") is None
    assert await a.allocate("net", pool(), "c9/eth1") == got[0]


async def test_freed_address_is_not_reused_at_once(tmp_path: Path) -> None:
    a = HostLocalAllocator(tmp_path)
    first = await a.allocate("net", pool(), "c1/eth1")
    await a.release("net", "c1/eth1")
    assert await a.allocate("net", pool(), "c2/eth1") != first


async def test_concurrent_allocators_on_one_directory_never_share_an_address(tmp_path: Path) -> None:
    """Four allocators in four threads (own loops, own locks): only link(2) keeps their claims apart."""
    big = pool(subnet="198.51.100.0/24", gateway="198.51.100.1")

    def worker(w: int) -> list[IPv4Interface]:
        a = HostLocalAllocator(tmp_path)

        async def run() -> list[IPv4Interface]:
            return [await a.allocate("net", big, f"w{w}-c{i}/eth1") for i in range(40)]

        return asyncio.run(run())

    results = await asyncio.gather(*(asyncio.to_thread(worker, w) for w in range(4)))
    got = [ip for r in results for ip in r]
    assert len(got) == 160
    assert len({g.ip for g in got}) == 160
    assert len(await HostLocalAllocator(tmp_path).owners("net")) == 160


def test_range_limits_candidates() -> None:
    p = pool(subnet="198.51.100.0/24", rangeStart="198.51.100.10", rangeEnd="198.51.100.12", gateway="198.51.100.11")
    assert p.candidates() == [IPv4Address("198.51.100.10"), IPv4Address("198.51.100.12")]


@pytest.mark.parametrize(
    ("ipam", "code", "text"),
    [
        ({"type": "p", "subnet": "198.51.100.0/24", "foo": 1}, wire.ERR_UNSUPPORTED_FIELD, "ipam.foo: 1"),
        (
            {"type": "p", "subnet": "198.51.100.0/24", "gateway": "203.0.113.1"},
            wire.ERR_INVALID_CONFIG,
            "not in subnet",
        ),
        ({"type": "p", "subnet": "not-a-subnet"}, wire.ERR_INVALID_CONFIG, "ipam.subnet"),
        ({"type": "p", "subnet": "198.51.100.0/31"}, wire.ERR_INVALID_CONFIG, "no room"),
    ],
)
def test_bad_ipam_sections(ipam: dict[str, object], code: int, text: str) -> None:
    with pytest.raises(ConfigError, match=text) as e:
        parse_netconf({"cniVersion": "1.0.0", "name": "n", "type": "t", "ipam": ipam})
    assert e.value.code == code


def test_network_name_must_be_a_safe_pool_name() -> None:
    with pytest.raises(ConfigError, match="network name") as e:
        parse_netconf({"cniVersion": "1.0.0", "name": "../etc", "type": "t"})
    assert e.value.code == wire.ERR_INVALID_CONFIG


async def test_the_gateway_address_itself_for_one_owner_and_every_pool_held(tmp_path: Path) -> None:
    from dpfd.dpu.cni.ipam import GatewayTaken

    a = HostLocalAllocator(tmp_path)
    assert await a.allocate("net", pool(), "router/eth1", gateway=True) == IPv4Interface("198.51.100.1/29")
    assert await a.allocate("net", pool(), "router/eth1", gateway=True) == IPv4Interface("198.51.100.1/29")
    with pytest.raises(GatewayTaken, match="held by router/eth1"):
        await a.allocate("net", pool(), "other/eth1", gateway=True)
    with pytest.raises(GatewayTaken, match="the pool has no gateway"):
        await a.allocate("bare", IpamConfig.model_validate({"type": "x", "subnet": "198.51.100.0/29"}), "o/eth1", True)
    await a.allocate("other", pool(), "c1/eth1")
    assert await a.held() == {
        "bare": {},
        "net": {"router/eth1": IPv4Address("198.51.100.1")},
        "other": {"c1/eth1": IPv4Address("198.51.100.2")},
    }
