"""The SFC CNI network configuration as dpfd reads it (the plugin checked cniVersion, name and type already).

    {"cniVersion": "1.0.0", "name": "mybrsfc", "type": "dpf-sfc-cni",
     "socket": "/run/dpfd/sfc-cni.sock",    # where dpfd listens (read by the plugin)
     "bridge": "br-sfc",                    # the bridge the host end joins
     "mtu": 1500,                           # optional
     "txChecksumOffload": false,            # the pod end's tx checksum offload (off: OVS userspace needs it for TCP)
     "ipam": {"type": "dpf-sfc-pool", "subnet": "198.51.100.0/24", "rangeStart": "198.51.100.10",
              "rangeEnd": "198.51.100.200", "gateway": "198.51.100.1", "routes": [{"dst": "0.0.0.0/0"}]}}

With the etcd IPAM (a dpfd with a store) the ipam section may be as DPF's NADs have it, `{"type": "nv-ipam"}`
with an optional `poolName`/`poolType`: the subnet, gateway and routes come from this DPU's range of the pool
(and `subnet`, when given, must contain it). The pool an attachment takes its address from: see
dpfd.dpu.cni.pools (DPF's pod-ipam-injector puts `poolNames` into the pod's Multus cni-args, i.e. `args.cni`).

Keys other than these at the top level are ignored (runtimes add runtimeConfig, args, prevResult ...); the
ipam section is ours, so a key there that dpfd does not know is an unsupported field (CNI error 2).
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dpfd.cni import wire

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"  # the spec's network name: also a directory name for the pool
_NAME = re.compile(NAME_PATTERN)


class ConfigError(Exception):
    """The network configuration is unusable; `code` is the CNI error code (2 or 7)."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code


class Route(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dst: IPv4Network
    gw: IPv4Address | None = None


class IpamConfig(BaseModel):
    """The network's ipam section: a host-local pool (subnet required), or what narrows the etcd IPAM's pool."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: str = Field(min_length=1)
    subnet: IPv4Network | None = None
    pool_name: str | None = Field(default=None, alias="poolName")  # nv-ipam's key: the pool (comma: dual stack)
    pool_type: str | None = Field(default=None, alias="poolType")  # nv-ipam's ippool | cidrpool
    range_start: IPv4Address | None = Field(default=None, alias="rangeStart")
    range_end: IPv4Address | None = Field(default=None, alias="rangeEnd")
    gateway: IPv4Address | None = None
    routes: list[Route] = Field(default_factory=list)

    @model_validator(mode="after")
    def _within_subnet(self) -> IpamConfig:
        if self.subnet is None:
            if self.range_start or self.range_end or self.gateway or any(r.gw for r in self.routes):
                raise ValueError("rangeStart, rangeEnd, gateway and a route's gw need a subnet")
            return self
        for label, addr in (("rangeStart", self.range_start), ("rangeEnd", self.range_end), ("gateway", self.gateway)):
            if addr is not None and addr not in self.subnet:
                raise ValueError(f"{label} {addr} is not in subnet {self.subnet}")
        if self.subnet.prefixlen > 30:
            raise ValueError(f"subnet {self.subnet} has no room for pods (prefix longer than /30)")
        if self.range_start is not None and self.range_end is not None and self.range_start > self.range_end:
            raise ValueError(f"rangeStart {self.range_start} is after rangeEnd {self.range_end}")
        return self

    def host_local_subnet(self) -> IPv4Network:
        """The subnet a host-local pool hands out; ConfigError(7) if the section names none."""
        if self.subnet is None:
            raise ConfigError(wire.ERR_INVALID_CONFIG, "ipam: a host-local pool needs a subnet")
        return self.subnet

    def candidates(self) -> list[IPv4Address]:
        """Addresses the pool hands out, in order: the range within the subnet's hosts, without the gateway."""
        subnet = self.host_local_subnet()
        first = self.range_start or subnet.network_address + 1
        last = self.range_end or subnet.broadcast_address - 1
        out = []
        for n in range(int(max(first, subnet.network_address + 1)), int(min(last, subnet.broadcast_address - 1)) + 1):
            addr = IPv4Address(n)
            if addr != self.gateway:
                out.append(addr)
        return out


class NetConf(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    cni_version: str = Field(alias="cniVersion")
    name: str
    bridge: str = Field(default="br-sfc", min_length=1, max_length=15)
    mtu: int | None = Field(default=None, ge=68, le=65535)
    tx_checksum_offload: bool = Field(default=False, alias="txChecksumOffload")
    ipam: IpamConfig | None = None
    args: dict[str, Any] | None = None  # the "args in network config" convention: Multus puts cni-args in args.cni
    runtime_config: dict[str, Any] | None = Field(default=None, alias="runtimeConfig")
    prev_result: dict[str, Any] | None = Field(default=None, alias="prevResult")
    valid_attachments: list[dict[str, Any]] | None = Field(default=None, alias="cni.dev/valid-attachments")


def parse_netconf(config: Any) -> NetConf:
    """`config` as a NetConf; ConfigError(2) for an unknown ipam key, ConfigError(7) for anything else wrong."""
    if not isinstance(config, dict):
        raise ConfigError(wire.ERR_INVALID_CONFIG, "network configuration is not an object")
    name = config.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(wire.ERR_INVALID_CONFIG, f"network name {name!r} is not alphanumeric with _ . -")
    try:
        return NetConf.model_validate(config)
    except ValidationError as e:
        for err in e.errors():
            if err["type"] == "extra_forbidden":
                where = ".".join(str(p) for p in err["loc"])
                raise ConfigError(wire.ERR_UNSUPPORTED_FIELD, f"unsupported field {where}: {err['input']!r}") from e
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "configuration"
        raise ConfigError(wire.ERR_INVALID_CONFIG, f"network configuration: {where}: {first['msg']}") from e
