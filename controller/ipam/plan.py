"""How a DPUServiceIPAM splits into per-node ranges, as DPF's nv-ipam pools do (pure functions).

ipv4Network (nv-ipam CIDRPool): each node gets a /prefixSize subnet of `network`, its gateway at `gatewayIndex`
in that subnet; `allocations` pin nodes to subnets (reserved even while their node is not selected);
`exclusions` are addresses no pod gets. ipv4Subnet (nv-ipam IPPool): each node gets a block of perNodeIPCount
consecutive addresses, blocks laid out from the first host address of `subnet`, all sharing `gateway`.

Assignments are sticky: a node keeps the range it has while that range is still a valid one of the spec and
not pinned to another node; new nodes take the lowest free ones, in node-name order.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from dpfd.api.chains import IPV4Network, IPV4Subnet
from dpfd.store.ipam_types import IpamError, NodeRange


class PoolExhausted(IpamError):
    """The pool has no free range left for some selected nodes."""


@dataclass
class Plan:
    pool: str
    ranges: dict[str, NodeRange] = field(default_factory=dict)
    unassigned: list[str] = field(default_factory=list)  # nodes the pool had no room for
    why: str = ""

    def check(self) -> None:
        """PoolExhausted naming the nodes left without a range."""
        if self.unassigned:
            raise PoolExhausted(f"pool {self.pool}: no range left for {', '.join(self.unassigned)}: {self.why}")


def _labels(labels: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((labels or {}).items()))


def plan_network(
    pool: str,
    spec: IPV4Network,
    nodes: Sequence[str],
    existing: Mapping[str, NodeRange],
    labels: Mapping[str, str] | None = None,
) -> Plan:
    """Per-node /prefixSize subnets of spec.network for `nodes`, keeping valid existing assignments."""
    net = IPv4Network(spec.network)
    size = spec.prefixSize
    if size <= net.prefixlen or size > 32:
        raise IpamError(f"pool {pool}: prefixSize {size} does not split {net}")
    exclusions = [IPv4Address(a) for a in spec.exclusions or []]
    routes = tuple(IPv4Network(r.dst) for r in spec.routes or [])

    def node_range(subnet: IPv4Network, static: bool) -> NodeRange:
        gateway = subnet.network_address + spec.gatewayIndex if spec.gatewayIndex is not None else None
        return NodeRange(
            subnet=subnet,
            first=subnet.network_address,
            last=subnet.broadcast_address,
            gateway=gateway,
            exclusions=tuple(a for a in exclusions if a in subnet),
            routes=routes,
            default_gateway=bool(spec.defaultGateway),
            static=static,
            labels=_labels(labels),
        )

    pinned = {node: IPv4Network(s) for node, s in (spec.allocations or {}).items()}
    for node, subnet in pinned.items():
        if subnet.prefixlen != size or not subnet.subnet_of(net):
            raise IpamError(f"pool {pool}: allocation {subnet} of {node} is not a /{size} subnet of {net}")
    reserved = {subnet: node for node, subnet in pinned.items()}
    wanted = sorted(set(nodes))
    plan = Plan(pool)
    taken: set[IPv4Network] = set(reserved)
    for node in wanted:
        if node in pinned:
            plan.ranges[node] = node_range(pinned[node], static=True)
    for node in wanted:
        if node in pinned:
            continue
        old = existing.get(node)
        if old is None or old.first != old.subnet.network_address or old.last != old.subnet.broadcast_address:
            continue
        if old.subnet.prefixlen == size and old.subnet.subnet_of(net) and old.subnet not in taken:
            plan.ranges[node] = node_range(old.subnet, static=False)
            taken.add(old.subnet)
    free: Iterator[IPv4Network] = (s for s in net.subnets(new_prefix=size) if s not in taken)
    for node in wanted:
        if node in plan.ranges:
            continue
        got = next(free, None)
        if got is None:
            plan.unassigned.append(node)
            continue
        plan.ranges[node] = node_range(got, static=False)
    if plan.unassigned:
        total = 2 ** (size - net.prefixlen)
        plan.why = f"{net} holds {total} /{size} subnets, {len(reserved)} pinned by allocations, all taken"
    return plan


def plan_subnet(
    pool: str,
    spec: IPV4Subnet,
    nodes: Sequence[str],
    existing: Mapping[str, NodeRange],
    labels: Mapping[str, str] | None = None,
) -> Plan:
    """Per-node blocks of spec.perNodeIPCount addresses of spec.subnet, all with the shared gateway."""
    net = IPv4Network(spec.subnet)
    per = spec.perNodeIPCount
    gateway = IPv4Address(spec.gateway)
    routes = tuple(IPv4Network(r.dst) for r in spec.routes or [])
    start = int(net.network_address) + (1 if net.prefixlen < 31 else 0)
    end = int(net.broadcast_address) - (1 if net.prefixlen < 31 else 0)
    blocks = (end - start + 1) // per

    def block(i: int) -> NodeRange:
        return NodeRange(
            subnet=net,
            first=IPv4Address(start + i * per),
            last=IPv4Address(start + (i + 1) * per - 1),
            gateway=gateway,
            routes=routes,
            default_gateway=bool(spec.defaultGateway),
            labels=_labels(labels),
        )

    def index_of(r: NodeRange) -> int | None:
        offset = int(r.first) - start
        if r.subnet != net or offset < 0 or offset % per or r.size != per or offset // per >= blocks:
            return None
        return offset // per

    plan = Plan(pool)
    taken: set[int] = set()
    wanted = sorted(set(nodes))
    for node in wanted:
        old = existing.get(node)
        i = index_of(old) if old is not None else None
        if i is not None and i not in taken:
            plan.ranges[node] = block(i)
            taken.add(i)
    free = (i for i in range(blocks) if i not in taken)
    for node in wanted:
        if node in plan.ranges:
            continue
        i = next(free, None)
        if i is None:
            plan.unassigned.append(node)
            continue
        plan.ranges[node] = block(i)
    if plan.unassigned:
        plan.why = f"{net} holds {blocks} blocks of {per} addresses, all taken"
    return plan
