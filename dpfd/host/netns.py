"""Netlink sockets in a named network namespace without forking.

pyroute2's `IPRoute(netns=...)` forks a helper process to enter the namespace. In dpfd that is unsafe: the fork
happens while gRPC's threads run (the child can crash), and the child shares the event loop's signal wakeup fd,
so a signal it gets reaches dpfd as its own (a SIGTERM that stopped the daemon). Instead the calling thread enters
the namespace with setns(2), opens the socket (a netlink socket stays in the namespace it was made in) and
returns to its own namespace at once. Only the calling thread switches, so call this from a worker thread or
briefly; nothing else runs on the thread meanwhile.
"""

from __future__ import annotations

import ctypes
import os

from pyroute2 import IPRoute

NETNS_DIR = "/var/run/netns"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def iproute(netns: str | None) -> IPRoute:
    """An IPRoute bound to network namespace `netns`: a name under /var/run/netns, or a path (CNI_NETNS gives
    /proc/<pid>/ns/net or a bind mount); None is the caller's. FileNotFoundError if it does not exist."""
    if not netns:
        return IPRoute()
    target = os.open(netns if os.path.isabs(netns) else os.path.join(NETNS_DIR, netns), os.O_RDONLY | os.O_CLOEXEC)
    try:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _setns(target)
            try:
                return IPRoute()
            finally:
                _setns(own)  # if this fails the thread is in the wrong namespace: let it raise loudly
        finally:
            os.close(own)
    finally:
        os.close(target)
