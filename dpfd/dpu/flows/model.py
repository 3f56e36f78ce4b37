"""DPF's ServiceChain flows, as pure functions (DPF's servicechain controller, dpf-api-notes §4).

Per switch with at least two ports, per port i: one flow `cookie=<chain>, table=0, priority=20, in_port=i` whose
actions are, for every other port j, `learn(cookie=<chain>, idle_timeout=10, table=0, priority=30, in_port=j,
dl_dst=dl_src, output:NXM_OF_IN_PORT[])`, then `output:j` for every other port j: a flooding switch that learns
where each source MAC lives. The learned flows carry the chain's cookie too, so deleting the chain's cookie removes
them with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from dpfd.api.chains import ServiceChainSpec, ServiceIfc

TABLE: Final = 0
PRIORITY_SWITCH: Final = 20
PRIORITY_LEARNED: Final = 30
IDLE_TIMEOUT: Final = 10

_FNV64_OFFSET: Final = 0xCBF29CE484222325
_FNV64_PRIME: Final = 0x100000001B3
_MASK64: Final = (1 << 64) - 1


def fnv64a(data: str | bytes) -> int:
    """FNV-1a, 64 bits (Go's hash/fnv New64a)."""
    raw = data.encode() if isinstance(data, str) else data
    h = _FNV64_OFFSET
    for byte in raw:
        h = ((h ^ byte) * _FNV64_PRIME) & _MASK64
    return h


def chain_cookie(namespace: str, name: str) -> int:
    """The cookie of every flow of the ServiceChain namespace/name."""
    return fnv64a(f"{namespace}/{name}")


@dataclass(frozen=True)
class Flow:
    cookie: int
    in_port: int
    actions: str
    table: int = TABLE
    priority: int = PRIORITY_SWITCH

    def text(self) -> str:
        """The flow in ovs-ofctl's add-flows syntax."""
        return (
            f"cookie={self.cookie:#x},table={self.table},priority={self.priority},"
            f"in_port={self.in_port},actions={self.actions}"
        )


def switch_flows(cookie: int, ofports: Sequence[int]) -> list[Flow]:
    """The flows of one switch joining `ofports` (a port named twice counts once; fewer than two: no flows)."""
    ports = list(dict.fromkeys(ofports))
    if len(ports) < 2:
        return []
    flows: list[Flow] = []
    for i in ports:
        others = [j for j in ports if j != i]
        learns = [
            f"learn(cookie={cookie:#x},idle_timeout={IDLE_TIMEOUT},table={TABLE},priority={PRIORITY_LEARNED},"
            f"in_port={j},dl_dst=dl_src,output:NXM_OF_IN_PORT[])"
            for j in others
        ]
        outputs = [f"output:{j}" for j in others]
        flows.append(Flow(cookie=cookie, in_port=i, actions=",".join(learns + outputs)))
    return flows


def chain_flows(cookie: int, switches: Iterable[Sequence[int]]) -> list[Flow]:
    """The flows of a chain whose switches join these ofports."""
    return [flow for ports in switches for flow in switch_flows(cookie, ports)]


class PortUnresolved(LookupError):
    """A chain port selects no port on the bridge (yet)."""


def spec_switches(spec: ServiceChainSpec, ofport: Callable[[ServiceIfc], int]) -> list[list[int]]:
    """The ofports of each switch of `spec`; `ofport` maps a port's serviceInterface selector to its ofport."""
    return [[ofport(port.serviceInterface) for port in switch.ports] for switch in spec.switches]


def flows_for(
    namespace: str,
    name: str,
    spec: ServiceChainSpec,
    port_of: Callable[[ServiceIfc], str],
    ofports: Mapping[str, int],
) -> list[Flow]:
    """The chain's flows, given each selector's port name and the bridge's map port name -> ofport."""

    def ofport(selector: ServiceIfc) -> int:
        port = port_of(selector)
        if port not in ofports:
            raise PortUnresolved(f"port {port!r} (for {selector.matchLabels}) is not on the bridge")
        return ofports[port]

    return chain_flows(chain_cookie(namespace, name), spec_switches(spec, ofport))
