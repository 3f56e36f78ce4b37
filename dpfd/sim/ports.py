"""Free loopback ports for the services dpf-sim and the tests start.

A port is picked now and bound later by another process, so it must stay free in between. The kernel's own pick
(bind to port 0) comes from the ephemeral range, where every outgoing connection also takes its source port: on a
busy machine one of them can take the port before its service binds it. So we pick below that range, and below the
node ports (30000-32767) the emulated Kamaji serves on, and never hand out the same port twice in one process.
"""

from __future__ import annotations

import random
import socket
from functools import cache

_LOW, _HIGH = 10000, 30000  # [_LOW, _HIGH): under Kubernetes' node ports
_given: set[int] = set()


@cache
def _ephemeral_range() -> range:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(v) for v in f.read().split())
        return range(low, high + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def _bindable(host: str, port: int) -> bool:
    # TCP and UDP both: a gossip member listens on both at one port.
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP (and UDP) port nobody listens on right now, outside the ephemeral range, not given out before."""
    ephemeral = _ephemeral_range()
    for _ in range(200):
        port = random.randrange(_LOW, _HIGH)
        if port not in ephemeral and port not in _given and _bindable(host, port):
            _given.add(port)
            return port
    # An ephemeral range that covers ours (some containers widen it): let the kernel pick.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
