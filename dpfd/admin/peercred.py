"""Who is on the other end of a unix socket (SO_PEERCRED), and whether they may use the admin API.

The kernel records the peer's pid, uid and gid when it connects; the supplementary groups come from the peer's
/proc entry (what the process really has, not what /etc/group would give the user now)."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import socket
import struct
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

_UCRED = struct.Struct("=iII")  # struct ucred: pid_t pid, uid_t uid, gid_t gid


@dataclass(frozen=True, slots=True)
class PeerCred:
    pid: int
    uid: int
    gid: int


def peer_cred(sock: socket.socket) -> PeerCred:
    """The credentials the kernel recorded when the peer of this connected unix socket connected."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid, uid, gid)


def process_groups(pid: int, proc: Path = Path("/proc")) -> set[int] | None:
    """The supplementary groups of a running process; None when its /proc entry cannot be read."""
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Groups:"):
            return {int(g) for g in line.split()[1:]}
    return None


def user_groups(uid: int, gid: int) -> set[int]:
    """The groups /etc/group gives a user: the fallback when the process is already gone."""
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return {gid}
    return set(os.getgrouplist(name, gid))


def resolve_group(group: str | int | None) -> int | None:
    """A group given by name or number as a gid; None when there is none (then only root is served)."""
    if group is None or isinstance(group, int):
        return group
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        log.warning("admin socket: group %s does not exist; only root may use the admin API", group)
        return None


@dataclass(frozen=True, slots=True)
class Authorizer:
    """Root, the daemon's own user, and members of ``gid`` are allowed; nobody else."""

    gid: int | None
    own_uid: int = field(default_factory=os.geteuid)

    def allows(self, cred: PeerCred) -> bool:
        if cred.uid in (0, self.own_uid):
            return True
        if self.gid is None:
            return False
        if cred.gid == self.gid:
            return True
        groups = process_groups(cred.pid)
        if groups is None:
            groups = user_groups(cred.uid, cred.gid)
        return self.gid in groups
