"""An IPAM pool's range on one node, as stored in etcd and read by that node's dpfd.

For an ipv4Network pool the range is the node's whole subnet (its own gateway inside it); for an ipv4Subnet pool
it is a block of the shared subnet (the shared gateway may lie outside the block). Either way a pod's address
is `<address>/<subnet.prefixlen>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from dpfd.store.errors import StoreError


class IpamError(StoreError):
    """An IPAM operation that cannot be carried out (the message says why)."""


class AddressesExhausted(IpamError):
    """No free address is left in a node's range."""


class NoRange(IpamError):
    """The node has no range in the pool (the controller has not assigned one, or took it back)."""


@dataclass(frozen=True)
class NodeRange:
    subnet: IPv4Network  # the prefix pods' addresses are in
    first: IPv4Address  # the node's addresses: first..last, inclusive
    last: IPv4Address
    gateway: IPv4Address | None = None
    exclusions: tuple[IPv4Address, ...] = ()
    routes: tuple[IPv4Network, ...] = ()
    default_gateway: bool = False
    static: bool = False  # from the pool's allocations, not chosen by the planner
    labels: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.first > self.last:
            raise ValueError(f"range {self.first}-{self.last} is empty")
        if self.first not in self.subnet or self.last not in self.subnet:
            raise ValueError(f"range {self.first}-{self.last} is not within {self.subnet}")

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def overlaps(self, other: NodeRange) -> bool:
        return self.first <= other.last and other.first <= self.last

    def describe(self) -> str:
        if self.first == self.subnet.network_address and self.last == self.subnet.broadcast_address:
            return str(self.subnet)
        return f"{self.first}-{self.last} of {self.subnet}"

    def candidates(self) -> list[IPv4Address]:
        """The addresses pods may get, in order: the range without the gateway, the exclusions, and (in a
        subnet larger than /31) its network and broadcast addresses."""
        skip = set(self.exclusions)
        if self.gateway is not None:
            skip.add(self.gateway)
        if self.subnet.prefixlen < 31:
            skip |= {self.subnet.network_address, self.subnet.broadcast_address}
        return [IPv4Address(n) for n in range(int(self.first), int(self.last) + 1) if IPv4Address(n) not in skip]

    def to_json(self) -> str:
        return json.dumps(
            {
                "subnet": str(self.subnet),
                "first": str(self.first),
                "last": str(self.last),
                "gateway": str(self.gateway) if self.gateway is not None else None,
                "exclusions": [str(a) for a in self.exclusions],
                "routes": [str(r) for r in self.routes],
                "defaultGateway": self.default_gateway,
                "static": self.static,
                "labels": dict(self.labels),
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, raw: bytes | str, where: str = "range") -> NodeRange:
        try:
            d = json.loads(raw)
            gw = d.get("gateway")
            return cls(
                subnet=IPv4Network(d["subnet"]),
                first=IPv4Address(d["first"]),
                last=IPv4Address(d["last"]),
                gateway=IPv4Address(gw) if gw else None,
                exclusions=tuple(IPv4Address(a) for a in d.get("exclusions", [])),
                routes=tuple(IPv4Network(r) for r in d.get("routes", [])),
                default_gateway=bool(d.get("defaultGateway", False)),
                static=bool(d.get("static", False)),
                labels=tuple(sorted(d.get("labels", {}).items())),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise IpamError(f"{where}: stored value is not a node range: {e}") from e
