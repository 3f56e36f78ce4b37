"""Helpers for the SFC CNI integration tests: namespaces, the real plugin executable, `ip` read-backs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PLUGIN = Path(sys.executable).parent / "dpf-sfc-cni"
SUBNET = "198.51.100.0/24"
GATEWAY = "198.51.100.1"


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), check=check, capture_output=True, text=True, timeout=30)


@contextmanager
def netns(prefix: str) -> Iterator[str]:
    """A fresh network namespace (lo up), removed afterwards with everything in it; yields its name."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        sh("ip", "netns", "del", name, check=False)


# An ICMP echo from a raw socket (the machine has no ping binary): exit 0 once `addr` answers, 1 after 3 s.
_PING = """
import os, select, socket, struct, sys, time
addr = sys.argv[1]
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF
ident = os.getpid() & 0xFFFF
hdr = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"dpf-sfc-cni"
pkt = hdr[:2] + struct.pack("!H", csum(hdr + b"\\0")) + hdr[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
deadline = time.monotonic() + 3
while time.monotonic() < deadline:
    s.sendto(pkt, (addr, 0))
    end = time.monotonic() + 0.3
    while (left := end - time.monotonic()) > 0 and select.select([s], [], [], left)[0]:
        data, src = s.recvfrom(2048)
        ihl = (data[0] & 0xF) * 4
        if src[0] == addr and data[ihl] == 0 and struct.unpack("!H", data[ihl + 4:ihl + 6])[0] == ident:
            sys.exit(0)
sys.exit(1)
"""


def ping(ns: str, address: str) -> bool:
    """True if `address` answers an ICMP echo sent from namespace `ns` (within 3 s)."""
    return sh("ip", "netns", "exec", ns, sys.executable, "-c", _PING, address, check=False).returncode == 0


def ns_path(name: str) -> str:
    return f"/var/run/netns/{name}"


def links(ns: str | None) -> dict[str, dict[str, Any]]:
    """`ip -j addr` of a namespace (None: this one), by interface name."""
    argv = ["ip", "-j"] + (["-n", ns] if ns else []) + ["addr", "show"]
    return {link["ifname"]: link for link in json.loads(sh(*argv).stdout)}


def addresses(link: dict[str, Any]) -> set[str]:
    return {f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a["family"] == "inet"}


@dataclass
class Plugin:
    """Runs the real dpf-sfc-cni with a network configuration, as a container runtime would."""

    conf: dict[str, Any]
    calls: list[tuple[str, int]] = field(default_factory=list)

    async def run(
        self,
        command: str,
        container_id: str = "",
        netns: str = "",
        ifname: str = "eth1",
        pod: str = "pod1",
        conf: dict[str, Any] | None = None,
    ) -> tuple[int, Any]:
        assert PLUGIN.exists(), f"{PLUGIN} is missing: pip install -e . installs the dpf-sfc-cni console script"
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_PATH": "/opt/cni/bin"}
        if container_id:
            env |= {
                "CNI_CONTAINERID": container_id,
                "CNI_IFNAME": ifname,
                "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME={pod}",
            }
        if netns:
            env["CNI_NETNS"] = netns
        proc = await asyncio.create_subprocess_exec(
            str(PLUGIN),
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(json.dumps(conf or self.conf).encode()), 60)
        assert proc.returncode is not None
        self.calls.append((command, proc.returncode))
        return proc.returncode, json.loads(out) if out.strip() else None
