"""A fresh network namespace with the host's OOB bridge br-dpu (an address and the default route on it).

Made with `ip netns add` and configured through dpfd.host.netns (setns in this thread): pyroute2's own netns
helpers fork, and a fork in a process running gRPC threads can kill the child (status -11)."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from dpfd.host.netns import iproute


@contextmanager
def bridge_netns(prefix: str, address: str, gateway: str) -> Iterator[str]:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True, timeout=10)
    try:
        with iproute(name) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")
            ipr.link("add", ifname="br-dpu", kind="bridge")
            index = ipr.link_lookup(ifname="br-dpu")[0]
            ipr.link("set", index=index, state="up")
            ipr.addr("add", index=index, address=address, prefixlen=24)
            ipr.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True, timeout=10)


def drop_bridge_address(name: str, address: str) -> None:
    with iproute(name) as ipr:
        index = ipr.link_lookup(ifname="br-dpu")[0]
        ipr.addr("del", index=index, address=address, prefixlen=24)
