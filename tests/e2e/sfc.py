"""The data-plane scenario of dpf-sim (`up --dataplane ovs`): one emulated DPU's OVS seen through `dpf-sim exec`,
service pods attached with the real `dpf-sfc-cni`, and traffic between the DPU's wire and host namespaces.

Addresses: the wire end (wire0) 203.0.113.1/25, the host's PF0 203.0.113.2/25; the pods' addresses come from the
DPUServiceIPAM of docs/examples/chain (203.0.113.128/25). A service pod is a bump in the wire: a Linux bridge joins
its two interfaces, so what enters one leaves by the other.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dpfd.sim.rack import OVS_RECORD
from tests.e2e.simfleet import ROOT

PLUGIN = Path(sys.executable).parent / "dpf-sfc-cni"
WIRE_IP = "203.0.113.1"
HOST_IP = "203.0.113.2"
PREFIX = 25
POD_NAMESPACE = "default"
UDP_PORT = 7000
TCP_PORT = 7001


def _run(argv: list[str], *, check: bool = True, timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(argv[:12])} exited {out.returncode}: {out.stderr.strip() or out.stdout}")
    return out


@dataclass
class SimDpu:
    """One emulated DPU with a data plane under a `dpf-sim up` state dir."""

    state: Path
    name: str
    record: dict[str, Any] = field(default_factory=dict)
    record_path: Path | None = None

    def __post_init__(self) -> None:
        for path in self.state.rglob(OVS_RECORD):
            record = json.loads(path.read_text())
            if record.get("name") == self.name:
                self.record, self.record_path = record, path
        assert self.record_path is not None, f"no {OVS_RECORD} of {self.name} under {self.state}"

    @property
    def cni_socket(self) -> Path:
        """The DPU dpfd's SFC CNI socket (dpf-sim puts it in the OVS's short rundir)."""
        return Path(self.record["cniSocket"])

    def exec_argv(self, *command: str, side: str = "dpu") -> list[str]:
        return [sys.executable, "-m", "dpfd.sim.cli", "exec", self.name, "--state-dir", str(self.state),
                "--in", side, "--", *command]  # fmt: skip

    def exec(self, *command: str, side: str = "dpu", **kw: Any) -> subprocess.CompletedProcess[str]:
        """`dpf-sim exec NAME --in SIDE -- COMMAND` (checked unless check=False)."""
        return _run(self.exec_argv(*command, side=side), cwd=ROOT, **kw)

    def netns(self, side: str) -> str:
        return str(self.record[{"dpu": "netns", "wire": "wireNetns", "host": "hostNetns"}[side]])

    # ------------------------------------------------------------------ OVS

    def ports(self) -> dict[str, dict[str, Any]]:
        """br-sfc's interfaces by name: ofport, type and external_ids."""
        out = self.exec("ovs-vsctl", "--format=json", "--columns=name,ofport,type,external_ids", "list", "Interface")
        rows = json.loads(out.stdout)
        found = {}
        for name, ofport, type_, ids in rows["data"]:
            found[name] = {"ofport": ofport if isinstance(ofport, int) else -1, "type": type_,
                           "external_ids": dict(ids[1])}  # fmt: skip
        return found

    def ofport_of(self, dpf_id: str) -> int:
        """The OpenFlow port of the interface whose external_ids:dpf-id is `dpf_id` (0: none)."""
        for port in self.ports().values():
            if port["external_ids"].get("dpf-id") == dpf_id and port["ofport"] > 0:
                return int(port["ofport"])
        return 0

    def flows(self) -> list[dict[str, str]]:
        """`ovs-ofctl dump-flows br-sfc` (port numbers, not names), each flow's fields and its actions."""
        out = self.exec("ovs-ofctl", "-O", "OpenFlow14", "--no-names", "dump-flows", "br-sfc")
        flows = []
        for line in out.stdout.splitlines()[1:]:
            match_part, _, actions = line.strip().partition(" actions=")
            fields = dict(f.split("=", 1) if "=" in f else (f, "") for f in re.split(r",\s*|\s+", match_part) if f)
            flows.append({**fields, "actions": actions})
        return flows

    def chain_flow(self, in_port: int) -> dict[str, str] | None:
        """The chain's own (priority 20) flow for packets entering at `in_port`."""
        for flow in self.flows():
            if flow.get("priority") == "20" and flow.get("in_port") == str(in_port):
                return flow
        return None

    def chain_packets(self, in_port: int, cookie: str) -> int:
        """Packets the chain's flows (its own and the MAC entries it learned, which carry its cookie and win over
        its own once the return traffic has taught them) counted for packets entering at `in_port`."""
        return sum(
            int(f.get("n_packets", "0"))
            for f in self.flows()
            if f.get("cookie") == cookie and f.get("in_port") == str(in_port)
        )

    def trace(self, flow: str) -> str:
        return self.exec("ovs-appctl", "ofproto/trace", "br-sfc", flow).stdout

    def mac(self, side: str, ifname: str) -> str:
        out = _run(["ip", "-j", "-n", self.netns(side), "link", "show", "dev", ifname])
        return str(json.loads(out.stdout)[0]["address"])


def trace_outputs(trace: str) -> list[int]:
    """The OpenFlow ports an ofproto/trace sends the packet to (its `output:N` actions)."""
    return [int(n) for n in re.findall(r"^\s+output:(\d+)\s*$", trace, re.MULTILINE)]


def quiet_netns(ns: str) -> None:
    """No IPv6 (no router solicitations or MLD moving the counters the tests read)."""
    _run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
          "net.ipv6.conf.default.disable_ipv6=1"])  # fmt: skip


def address_ends(dpu: SimDpu, host_pf: str = "p0") -> None:
    """Addresses on the wire end of p0 and on the host's PF0, IPv6 off in both namespaces."""
    for side, ifname, ip in (("wire", "wire0", WIRE_IP), ("host", host_pf, HOST_IP)):
        quiet_netns(dpu.netns(side))
        _run(["ip", "-n", dpu.netns(side), "addr", "replace", f"{ip}/{PREFIX}", "dev", ifname])


@dataclass
class ServicePod:
    """A pod's network namespace with interfaces from the real dpf-sfc-cni (run in the DPU's environment)."""

    dpu: SimDpu
    name: str  # the pod's name (contains its serviceID)
    ifnames: tuple[str, ...]
    netns: str = ""
    container_id: str = ""
    results: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.netns = self.netns or f"dpfpod-{tag}"
        self.container_id = self.container_id or f"{self.name}-{tag}"

    def netconf(self) -> dict[str, Any]:
        return {"cniVersion": "1.0.0", "name": "mybrsfc", "type": "dpf-sfc-cni", "socket": str(self.dpu.cni_socket),
                "bridge": "br-sfc", "ipam": {"type": "nv-ipam", "poolName": "mybrsfc"}}  # fmt: skip

    def cni(self, command: str, ifname: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": command, "CNI_CONTAINERID": self.container_id,
               "CNI_NETNS": f"/var/run/netns/{self.netns}", "CNI_IFNAME": ifname, "CNI_PATH": "/opt/cni/bin",
               "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={POD_NAMESPACE};K8S_POD_NAME={self.name}"}  # fmt: skip
        return self.dpu.exec(str(PLUGIN), input=json.dumps(self.netconf()), env=env, check=False, timeout=60)

    def start(self) -> None:
        """The namespace, one CNI ADD per interface, and a bridge joining them."""
        _run(["ip", "netns", "add", self.netns])
        _run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        quiet_netns(self.netns)
        for ifname in self.ifnames:
            out = self.cni("ADD", ifname)
            assert out.returncode == 0, f"CNI ADD {self.name}/{ifname}: {out.stdout} {out.stderr}"
            self.results[ifname] = json.loads(out.stdout)
        _run(["ip", "-n", self.netns, "link", "add", "br0", "type", "bridge"])
        for ifname in self.ifnames:
            _run(["ip", "-n", self.netns, "link", "set", ifname, "master", "br0"])
        _run(["ip", "-n", self.netns, "link", "set", "br0", "up"])

    def stop(self) -> None:
        for ifname in self.ifnames:
            self.cni("DEL", ifname)
        _run(["ip", "netns", "del", self.netns], check=False)

    def dpf_id(self, ifname: str) -> str:
        return f"{POD_NAMESPACE}/{self.name}/{ifname}"

    def rx_packets(self, ifname: str) -> int:
        """Packets the pod received on `ifname` (i.e. that OVS sent to its port)."""
        out = _run(["ip", "-j", "-s", "-n", self.netns, "link", "show", "dev", ifname])
        return int(json.loads(out.stdout)[0]["stats64"]["rx"]["packets"])


_UDP_SERVER = """
import socket, sys
want, marker = int(sys.argv[3]), sys.argv[4].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
s.settimeout(10)
got = 0
try:
    while got < want:
        if s.recv(100) == marker:
            got += 1
except TimeoutError:
    pass
print(got, flush=True)
"""

_UDP_CLIENT = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    s.sendto(sys.argv[4].encode(), (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.01)  # a paced stream, not a wait
"""

_TCP_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
print("ready", flush=True)
s.settimeout(20)
c, _ = s.accept()
c.settimeout(20)
while data := c.recv(65536):
    c.sendall(data)
"""

_TCP_CLIENT = """
import hashlib, os, socket, sys
payload = os.urandom(int(sys.argv[3]))
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
c.sendall(payload)
c.shutdown(socket.SHUT_WR)
back = b""
while chunk := c.recv(65536):
    back += chunk
print("echoed" if back == payload else f"mismatch {len(back)} of {len(payload)}", flush=True)
"""


def _server(dpu: SimDpu, code: str, *args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(dpu.exec_argv(sys.executable, "-c", code, *args, side="host"), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        proc.kill()
        raise AssertionError(
            f"server in the host namespace did not start: {line} {proc.stderr.read() if proc.stderr else ''}"
        )
    return proc


def udp_wire_to_host(dpu: SimDpu, count: int = 50) -> int:
    """Send `count` datagrams from the wire to the host's PF0; how many arrived."""
    marker = f"dpf-{uuid.uuid4().hex[:8]}"
    server = _server(dpu, _UDP_SERVER, HOST_IP, str(UDP_PORT), str(count), marker)
    try:
        dpu.exec(sys.executable, "-c", _UDP_CLIENT, HOST_IP, str(UDP_PORT), str(count), marker, side="wire")
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    assert server.returncode == 0, err
    return int(out.strip())


def tcp_wire_to_host(dpu: SimDpu, size: int = 256 * 1024) -> str:
    """A TCP connection from the wire to the host, `size` random bytes there and back: "echoed" if intact."""
    server = _server(dpu, _TCP_SERVER, HOST_IP, str(TCP_PORT))
    try:
        out = dpu.exec(sys.executable, "-c", _TCP_CLIENT, HOST_IP, str(TCP_PORT), str(size), side="wire", check=False)
        server.wait(30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(10)
    return out.stdout.strip() or out.stderr.strip()
