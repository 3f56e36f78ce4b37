"""Which pool a CNI request takes its address from: DPF's cni-args (args.cni), runtimeConfig, CNI_ARGS, the ipam
section, the network name, in that order; malformed values explained with their source."""

from __future__ import annotations

from typing import Any

import pytest

from dpfd.cni import wire
from dpfd.dpu.cni.netconf import ConfigError, parse_netconf
from dpfd.dpu.cni.pools import PoolRequest, pool_request


def conf(**extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "mybrsfc", "type": "dpf-sfc-cni", "ipam": {"type": "nv-ipam"}, **extra}


def request(cni_args: dict[str, str] | None = None, **extra: Any) -> PoolRequest:
    return pool_request(parse_netconf(conf(**extra)), cni_args or {})


def test_the_network_name_without_anything_else() -> None:
    assert request() == PoolRequest("mybrsfc", None, False, "network name")


def test_dpfs_cni_args_win_over_every_other_source() -> None:
    got = request(
        {"poolNames": "from-cni-args", "poolType": "cidrpool"},
        args={"cni": {"poolNames": ["sfc-pool"], "poolType": "IPPool", "allocateDefaultGateway": True}},
        runtimeConfig={"poolNames": ["from-runtime"]},
        ipam={"type": "nv-ipam", "poolName": "from-ipam"},
    )
    assert got == PoolRequest("sfc-pool", "ippool", True, "args.cni")


def test_each_key_from_the_first_source_that_has_it() -> None:
    got = request(
        {"allocateDefaultGateway": "true"},
        runtimeConfig={"poolType": "cidrpool"},
        ipam={"type": "nv-ipam", "poolName": "from-ipam"},
    )
    assert got == PoolRequest("from-ipam", "cidrpool", True, "ipam")
    assert request({"poolNames": "a"}).pool == "a"


@pytest.mark.parametrize(
    ("cni", "message"),
    [
        ({"poolNames": ["a", "b"]}, "must name exactly one (IPv4) pool"),
        ({"poolNames": []}, "must name exactly one"),
        ({"poolNames": [1]}, "neither a list of names"),
        ({"poolNames": ["a/b"]}, "is not alphanumeric"),
        ({"poolType": "subnet"}, "is not one of ippool, cidrpool"),
        ({"allocateDefaultGateway": "yes"}, "is not true or false"),
    ],
)
def test_malformed_values_name_their_source(cni: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=r"^args\.cni: .*" + message.replace("(", r"\(").replace(")", r"\)")) as e:
        request(args={"cni": cni})
    assert e.value.code == wire.ERR_INVALID_CONFIG


def test_an_ipam_section_without_subnet_is_fine_until_a_host_local_pool_needs_one() -> None:
    ipam = parse_netconf(conf()).ipam
    assert ipam is not None and ipam.subnet is None
    with pytest.raises(ConfigError, match="a host-local pool needs a subnet"):
        ipam.candidates()
    with pytest.raises(ConfigError, match="need a subnet"):
        parse_netconf(conf(ipam={"type": "nv-ipam", "gateway": "198.51.100.1"}))
