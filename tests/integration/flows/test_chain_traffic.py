"""Real traffic through a chain: namespaces joined by veths to br-sfc; UDP crosses exactly the configured switch.

UDP datagrams (Python at both ends, no ping binary needed) with checksum offload off on the namespace veths (the
userspace datapath reads them with AF_PACKET and would pass partial checksums on).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dpfd.api.intents import Intent, ObjectRef
from dpfd.dpu.flows.model import Labels, PortUnresolved
from dpfd.dpu.flows.reconciler import ServiceChainReconciler
from tests.ovs_fixture import PrivateOvs
from tests.waiting import eventually

BR = "br-sfc"
HOSTS = {"a": "198.51.100.1", "b": "198.51.100.2", "c": "198.51.100.3"}


def ip(*args: str) -> None:
    p = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if p.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {p.stderr.strip()}")


@pytest.fixture
def hosts(ovs: PrivateOvs) -> Iterator[dict[str, str]]:
    """Netns per host; its veth's peer `s<host>` is a port of br-sfc (in the OVS's own netns)."""
    assert ovs.netns is not None
    ovs.add_bridge(BR)
    tag = f"{os.getpid() % 10000}"
    made: list[str] = []
    try:
        for h, addr in HOSTS.items():
            ns = f"dpfh-{tag}-{h}"
            ip("netns", "add", ns)
            made.append(ns)
            ip("link", "add", f"h{h}{tag}", "type", "veth", "peer", "name", f"s{h}{tag}")
            ip("link", "set", f"h{h}{tag}", "netns", ns, "name", "eth0")
            ip("link", "set", f"s{h}{tag}", "netns", ovs.netns, "name", f"s{h}")
            ip("-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "link", "set", "lo", "up")
            subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"],
                           capture_output=True, check=True, timeout=10)  # fmt: skip
            ip("-n", ovs.netns, "link", "set", f"s{h}", "up")
            ovs.vsctl("add-port", BR, f"s{h}")
        yield {h: f"dpfh-{tag}-{h}" for h in HOSTS}
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


RECV = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9999))
s.settimeout(1.0)
print("ready", flush=True)
try:
    s.recvfrom(100)
except TimeoutError:
    sys.exit(1)
"""
SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3):
    s.sendto(b"through the chain", (sys.argv[1], 9999))
"""


def reaches(src: str, dst: str, addr: str) -> bool:
    """A UDP datagram sent from netns `src` to `addr` arrives in netns `dst` within a second."""
    recv = subprocess.Popen(["ip", "netns", "exec", dst, sys.executable, "-c", RECV, addr],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", src, sys.executable, "-c", SEND, addr], check=True, timeout=10)
        return recv.wait(timeout=10) == 0
    finally:
        if recv.poll() is None:
            recv.kill()
            recv.wait()


def chain(gen: int, *ports: str) -> Intent:
    sw = [{"ports": [{"serviceInterface": {"matchLabels": {"port": p}}} for p in ports]}]
    ref = ObjectRef(kind="ServiceChain", namespace="ns", name="traffic-dpu1")
    return Intent(node="dpu1", ref=ref, generation=gen, spec={"switches": sw})


async def test_udp_follows_the_chain_and_a_change_reroutes_it(ovs: PrivateOvs, hosts: dict[str, str]) -> None:
    async def lookup(namespace: str, labels: Labels) -> int:
        out = ovs.run(["ovs-vsctl", f"--db={ovs.db}", "get", "Interface", labels["port"], "ofport"], check=False)
        if not out.strip() or int(out) <= 0:
            raise PortUnresolved(labels["port"])
        return int(out)

    rec = ServiceChainReconciler("dpu1", lookup, ovs.mgmt(BR))
    # fail_mode=secure and no flows: nothing passes.
    assert not reaches(hosts["a"], hosts["b"], HOSTS["b"])
    it = chain(1, "sa", "sb")
    await rec.reconcile(it.ref, it)
    await eventually(
        lambda: reaches(hosts["a"], hosts["b"], HOSTS["b"]), within=10, what="a reaches b through the chain"
    )
    assert not reaches(hosts["a"], hosts["c"], HOSTS["c"])
    it = chain(2, "sa", "sc")
    await rec.reconcile(it.ref, it)
    await eventually(
        lambda: reaches(hosts["a"], hosts["c"], HOSTS["c"]), within=10, what="a reaches c after the change"
    )
    assert not reaches(hosts["a"], hosts["b"], HOSTS["b"])
    assert "sb" not in ovs.ofctl("dump-flows", BR, "--names")
    await rec.reconcile(it.ref, None)
    assert not reaches(hosts["a"], hosts["c"], HOSTS["c"])
