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
from typing import Any, Final

from dpfd.api.chains import ServiceChainSpec

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
    c = f"{cookie:#x}"
    learn = {
        j: f"learn(cookie={c},idle_timeout={IDLE_TIMEOUT},table={TABLE},priority={PRIORITY_LEARNED},"
        f"in_port={j},dl_dst=dl_src,output:NXM_OF_IN_PORT[])"
        for j in ports
    }
    flows: list[Flow] = []
    for i in ports:
        others = [j for j in ports if j != i]
        actions = ",".join([*(learn[j] for j in others), *(f"output:{j}" for j in others)])
        flows.append(Flow(cookie=cookie, in_port=i, actions=actions))
    return flows


def chain_flows(cookie: int, switches: Iterable[Sequence[int]]) -> list[Flow]:
    """The flows of a chain whose switches join these ofports."""
    return [flow for ports in switches for flow in switch_flows(cookie, ports)]


def chain_texts(cookie: int, switches: Iterable[Sequence[int]]) -> tuple[str, ...]:
    """`chain_flows(...)`'s texts, built directly: the chain's cookie fragments once, each port's learn and output
    fragments once per switch (this runs for every chain of a bridge at once after an ovs-vswitchd restart or a
    dpfd start: 10,000 flows cost a few milliseconds instead of tens)."""
    c = f"{cookie:#x}"
    head = f"cookie={c},table={TABLE},priority={PRIORITY_SWITCH},in_port="
    learn_head = f"learn(cookie={c},idle_timeout={IDLE_TIMEOUT},table={TABLE},priority={PRIORITY_LEARNED},in_port="
    out: list[str] = []
    for ofports in switches:
        ports = [str(p) for p in dict.fromkeys(ofports)]
        if len(ports) < 2:
            continue
        if len(ports) == 2:  # the usual switch: one learn and one output each way
            a, b = ports
            out.append(f"{head}{a},actions={learn_head}{b}{_LEARN_TAIL},output:{b}")
            out.append(f"{head}{b},actions={learn_head}{a}{_LEARN_TAIL},output:{a}")
            continue
        learn = [f"{learn_head}{j}{_LEARN_TAIL}" for j in ports]
        output = [f"output:{j}" for j in ports]
        for k, i in enumerate(ports):
            actions = ",".join([*learn[:k], *learn[k + 1 :], *output[:k], *output[k + 1 :]])
            out.append(f"{head}{i},actions={actions}")
    return tuple(out)


_LEARN_TAIL: Final = ",dl_dst=dl_src,output:NXM_OF_IN_PORT[])"


class PortUnresolved(LookupError):
    """A chain port selects no port on the bridge (yet)."""


Labels = Mapping[str, str]


def spec_selectors(spec: Mapping[str, Any]) -> list[list[Labels]]:
    """Each switch's port selectors (serviceInterface.matchLabels) from a ServiceChain spec as the intent carries it.

    The controller admitted the spec already, so a well-formed one is read directly (validating 1,000 chains' label
    rules again would cost more than applying their flows); anything else goes through the API model, whose
    error (pydantic's ValidationError) says what is wrong.
    """
    try:
        out: list[list[Labels]] = []
        switches = spec["switches"]
        if not isinstance(switches, list) or not switches:
            raise TypeError("switches")
        for switch in switches:
            ports = switch["ports"]
            if not isinstance(ports, list) or not ports:
                raise TypeError("ports")
            row: list[Labels] = []
            for port in ports:
                labels = port["serviceInterface"]["matchLabels"]
                if not isinstance(labels, dict) or not labels:
                    raise TypeError("matchLabels")
                if not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
                    raise TypeError("matchLabels")
                row.append(labels)
            out.append(row)
        return out
    except (KeyError, TypeError):
        model = ServiceChainSpec.model_validate(spec)
        return [[port.serviceInterface.matchLabels for port in switch.ports] for switch in model.switches]


def flows_for(
    namespace: str,
    name: str,
    spec: Mapping[str, Any],
    port_of: Callable[[Labels], str],
    ofports: Mapping[str, int],
) -> list[Flow]:
    """The chain's flows, given each selector's port name and the bridge's map port name -> ofport."""

    def ofport(labels: Labels) -> int:
        port = port_of(labels)
        if port not in ofports:
            raise PortUnresolved(f"port {port!r} (for {dict(labels)}) is not on the bridge")
        return ofports[port]

    switches = [[ofport(labels) for labels in switch] for switch in spec_selectors(spec)]
    return chain_flows(chain_cookie(namespace, name), switches)
