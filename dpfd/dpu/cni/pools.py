"""Which IPAM pool an attachment takes its address from, and how, as DPF's SFC CNI is told.

In DPF a chain port's `ipam.matchLabels` selects a DPUServiceIPAM by its labels, and the pod-ipam-injector
patches the pod's Multus entry with cni-args `poolNames`, `poolType` and `allocateDefaultGateway` (nv-ipam's
"args in network config"). Multus passes cni-args as the network configuration's `args.cni`; a runtime may
instead use `runtimeConfig` or CNI_ARGS. Each key is taken from the first of these that has it:

    args.cni  >  runtimeConfig  >  CNI_ARGS  >  the ipam section (poolName, poolType)  >  the network name

`poolNames` is a list, or a comma-separated string (CNI_ARGS, nv-ipam's `poolName`); this IPv4-only IPAM takes
exactly one pool. `poolType` is nv-ipam's: `ippool` (a DPUServiceIPAM's ipv4Subnet) or `cidrpool` (ipv4Network).
`allocateDefaultGateway`: the attachment gets the range's gateway address itself (a router service).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dpfd.cni import wire
from dpfd.dpu.cni.netconf import ConfigError, NetConf

PoolType = Literal["ippool", "cidrpool"]
POOL_TYPES: tuple[PoolType, ...] = ("ippool", "cidrpool")
_POOL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")  # a DPUServiceIPAM's name; also no '/' for etcd keys


@dataclass(frozen=True)
class PoolRequest:
    pool: str
    pool_type: PoolType | None = None
    gateway: bool = False  # allocateDefaultGateway
    source: str = "network name"  # where the pool name came from (for messages)


def _sources(conf: NetConf, cni_args: Mapping[str, str]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    cni = (conf.args or {}).get("cni")
    if isinstance(cni, Mapping):
        yield "args.cni", cni
    if conf.runtime_config:
        yield "runtimeConfig", conf.runtime_config
    yield "CNI_ARGS", cni_args
    if conf.ipam is not None:
        ipam: dict[str, Any] = {}
        if conf.ipam.pool_name:
            ipam["poolNames"] = conf.ipam.pool_name
        if conf.ipam.pool_type:
            ipam["poolType"] = conf.ipam.pool_type
        yield "ipam", ipam


def _invalid(msg: str) -> ConfigError:
    return ConfigError(wire.ERR_INVALID_CONFIG, msg)


def _pool_name(value: Any, where: str) -> str:
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _invalid(f"{where}: poolNames {value!r} is neither a list of names nor a comma-separated string")
    names = [n.strip() for n in names if n.strip()]
    if len(names) != 1:
        raise _invalid(f"{where}: poolNames {value!r} must name exactly one (IPv4) pool")
    if not _POOL_NAME.match(names[0]):
        raise _invalid(f"{where}: pool name {names[0]!r} is not alphanumeric with _ . -")
    return names[0]


def _pool_type(value: Any, where: str) -> PoolType:
    kind = value.lower() if isinstance(value, str) else value
    for t in POOL_TYPES:
        if kind == t:
            return t
    raise _invalid(f"{where}: poolType {value!r} is not one of {', '.join(POOL_TYPES)}")


def _flag(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _invalid(f"{where}: allocateDefaultGateway {value!r} is not true or false")


def pool_request(conf: NetConf, cni_args: Mapping[str, str]) -> PoolRequest:
    """The pool and options of this request; ConfigError(7) naming the source of a malformed value."""
    pool: str | None = None
    source = "network name"
    pool_type: PoolType | None = None
    gateway: bool | None = None
    for where, values in _sources(conf, cni_args):
        if pool is None and values.get("poolNames") is not None:
            pool, source = _pool_name(values["poolNames"], where), where
        if pool_type is None and values.get("poolType") is not None:
            pool_type = _pool_type(values["poolType"], where)
        if gateway is None and values.get("allocateDefaultGateway") is not None:
            gateway = _flag(values["allocateDefaultGateway"], where)
    return PoolRequest(pool or conf.name, pool_type, bool(gateway), source)
