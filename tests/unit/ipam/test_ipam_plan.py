"""The DPUServiceIPAM split: ipv4Network subnets per node, ipv4Subnet blocks per node, stickiness, exhaustion."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from controller.ipam.plan import PoolExhausted, plan_network, plan_subnet
from dpfd.api.chains import IPV4Network, IPV4Subnet, Route
from dpfd.store.ipam_ranges import check_disjoint
from dpfd.store.ipam_types import IpamError, NodeRange


def net(**kw: object) -> IPV4Network:
    args: dict[str, object] = {"network": "198.51.100.0/24", "prefixSize": 28, "gatewayIndex": 1, **kw}
    return IPV4Network.model_validate(args)


def test_network_splits_in_node_order_with_gateway_index() -> None:
    plan = plan_network("p", net(gatewayIndex=3), ["dpu-b", "dpu-a"], {})
    plan.check()
    a, b = plan.ranges["dpu-a"], plan.ranges["dpu-b"]
    assert a.subnet == IPv4Network("198.51.100.0/28") and b.subnet == IPv4Network("198.51.100.16/28")
    assert a.gateway == IPv4Address("198.51.100.3") and b.gateway == IPv4Address("198.51.100.19")
    assert (a.first, a.last) == (IPv4Address("198.51.100.0"), IPv4Address("198.51.100.15"))
    # pods get neither network, broadcast nor gateway address
    cands = a.candidates()
    assert IPv4Address("198.51.100.0") not in cands and IPv4Address("198.51.100.15") not in cands
    assert IPv4Address("198.51.100.3") not in cands and len(cands) == 13


def test_network_exclusions_stay_in_their_node_subnet_and_are_never_candidates() -> None:
    plan = plan_network("p", net(exclusions=["198.51.100.5", "198.51.100.20"]), ["a", "b"], {})
    assert plan.ranges["a"].exclusions == (IPv4Address("198.51.100.5"),)
    assert plan.ranges["b"].exclusions == (IPv4Address("198.51.100.20"),)
    assert IPv4Address("198.51.100.5") not in plan.ranges["a"].candidates()
    assert IPv4Address("198.51.100.20") not in plan.ranges["b"].candidates()


def test_static_allocations_pin_nodes_and_are_reserved_for_absent_nodes() -> None:
    spec = net(allocations={"a": "198.51.100.32/28", "absent": "198.51.100.0/28"})
    plan = plan_network("p", spec, ["a", "b", "c"], {})
    assert plan.ranges["a"].subnet == IPv4Network("198.51.100.32/28") and plan.ranges["a"].static
    assert plan.ranges["b"].subnet == IPv4Network("198.51.100.16/28")  # .0/28 reserved for "absent"
    assert plan.ranges["c"].subnet == IPv4Network("198.51.100.48/28")
    assert "absent" not in plan.ranges


def test_existing_assignments_are_kept_and_a_pinned_subnet_is_taken_back() -> None:
    first = plan_network("p", net(), ["a", "b", "c"], {})
    # "a" leaves; a new node "0" sorts first but must not take b's or c's subnet
    again = plan_network("p", net(), ["0", "b", "c"], first.ranges)
    assert again.ranges["b"] == first.ranges["b"] and again.ranges["c"] == first.ranges["c"]
    assert again.ranges["0"].subnet == first.ranges["a"].subnet
    # pinning b's subnet to c moves b elsewhere
    pinned = plan_network("p", net(allocations={"c": str(first.ranges["b"].subnet)}), ["b", "c"], first.ranges)
    assert pinned.ranges["c"].subnet == first.ranges["b"].subnet
    assert pinned.ranges["b"].subnet not in (first.ranges["b"].subnet, first.ranges["c"].subnet)
    check_disjoint("p", pinned.ranges)


def test_an_existing_range_of_another_size_is_replaced() -> None:
    old = plan_network("p", net(prefixSize=27), ["a"], {})
    new = plan_network("p", net(prefixSize=28), ["a"], old.ranges)
    assert new.ranges["a"].subnet.prefixlen == 28


def test_network_exhaustion_assigns_what_fits_and_names_the_rest() -> None:
    spec = net(network="198.51.100.0/26", prefixSize=28, allocations={"gone": "198.51.100.48/28"})
    plan = plan_network("pool1", spec, ["n1", "n2", "n3", "n4", "n5"], {})
    assert sorted(plan.ranges) == ["n1", "n2", "n3"]
    assert plan.unassigned == ["n4", "n5"]
    with pytest.raises(PoolExhausted, match=r"pool pool1: no range left for n4, n5: 198.51.100.0/26 holds 4 /28"):
        plan.check()


def test_network_routes_and_default_gateway_and_labels_are_carried() -> None:
    spec = net(defaultGateway=True, routes=[Route(dst="203.0.113.0/24")])
    r = plan_network("p", spec, ["a"], {}, labels={"svc": "x"}).ranges["a"]
    assert r.default_gateway and r.routes == (IPv4Network("203.0.113.0/24"),) and r.labels == (("svc", "x"),)
    assert NodeRange.from_json(r.to_json()) == r


def sub(**kw: object) -> IPV4Subnet:
    args: dict[str, object] = {"subnet": "203.0.113.0/24", "gateway": "203.0.113.1", "perNodeIPCount": 50, **kw}
    return IPV4Subnet.model_validate(args)


def test_subnet_blocks_share_the_gateway() -> None:
    plan = plan_subnet("p", sub(), ["b", "a"], {})
    a, b = plan.ranges["a"], plan.ranges["b"]
    assert (a.first, a.last) == (IPv4Address("203.0.113.1"), IPv4Address("203.0.113.50"))
    assert (b.first, b.last) == (IPv4Address("203.0.113.51"), IPv4Address("203.0.113.100"))
    assert a.gateway == b.gateway == IPv4Address("203.0.113.1")
    assert a.subnet == b.subnet == IPv4Network("203.0.113.0/24")
    assert IPv4Address("203.0.113.1") not in a.candidates() and len(a.candidates()) == 49
    assert len(b.candidates()) == 50


def test_subnet_exhaustion_and_stickiness() -> None:
    first = plan_subnet("p", sub(), ["a", "b", "c", "d", "e", "f"], {})
    assert len(first.ranges) == 5 and first.unassigned == ["f"]  # 254 hosts: five blocks of 50
    with pytest.raises(PoolExhausted, match=r"203.0.113.0/24 holds 5 blocks of 50 addresses"):
        first.check()
    again = plan_subnet("p", sub(), ["f", "e"], first.ranges)
    assert again.ranges["e"] == first.ranges["e"] and again.ranges["f"] == first.ranges["a"]
    # another block size: every block is new
    other = plan_subnet("p", sub(perNodeIPCount=20), ["e"], first.ranges)
    assert other.ranges["e"].size == 20 and other.ranges["e"].first == IPv4Address("203.0.113.1")


def test_check_disjoint_catches_any_overlap() -> None:
    wide = NodeRange(IPv4Network("198.51.100.0/24"), IPv4Address("198.51.100.0"), IPv4Address("198.51.100.200"))
    small = NodeRange(IPv4Network("198.51.100.0/24"), IPv4Address("198.51.100.10"), IPv4Address("198.51.100.20"))
    late = NodeRange(IPv4Network("198.51.100.0/24"), IPv4Address("198.51.100.100"), IPv4Address("198.51.100.110"))
    check_disjoint("p", {"s": small})
    with pytest.raises(IpamError, match="overlaps"):
        check_disjoint("p", {"w": wide, "s": small, "l": late})
    with pytest.raises(IpamError, match=r"range 198.51.100.0-198.51.100.200 .* of w overlaps .* of l"):
        check_disjoint("p", {"w": wide, "l": late})
