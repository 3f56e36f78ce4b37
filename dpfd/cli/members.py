"""`dpfctl members`: the gossip view of the local dpfd, asked over its admin socket.

Unlike `dpfctl get members` (who holds a session in etcd), this is what the failure detector of one daemon sees
right now: alive, suspect, dead or left, seconds after it happens."""

from __future__ import annotations

import time
from typing import Any

from dpfd.admin.server import DEFAULT_SOCKET
from dpfd.cli import output
from dpfd.cli.client import SOCKET_ENV, TIMEOUT, AdminClient, Target, socket_path
from dpfd.cli.errors import CliError
from dpfd.cli.output import dump, table
from dpfd.proto.dpf.admin.v1 import admin_pb2

__all__ = ["DEFAULT_SOCKET", "SOCKET_ENV", "AdminUnreachable", "list_members", "render", "socket_path"]

HEADERS = ("NAME", "STATE", "ROLE", "ADDRESS", "HOST/PCI", "INCARNATION", "AGE")

AdminUnreachable = CliError  # the daemon could not be asked, or would not answer: one line for the user


def list_members(path: str, timeout: float = TIMEOUT) -> list[admin_pb2.Member]:
    return fetch(Target(socket=path), timeout)


def fetch(target: Target, timeout: float = TIMEOUT) -> list[admin_pb2.Member]:
    with AdminClient(target, timeout) as client:
        reply = client.call("ListMembers", admin_pb2.ListMembersRequest())
    return list(reply.members)


def age(started: float, now: float) -> str:
    return output.age(started, now)


def row(m: admin_pb2.Member, now: float) -> list[str]:
    placement = f"{m.host}/{m.pci}" if m.role == "dpu" and (m.host or m.pci) else ""
    return [m.name, m.state, m.role, m.address, placement, str(m.incarnation), age(m.started, now)]


def as_json(m: admin_pb2.Member) -> dict[str, Any]:
    return {
        "name": m.name,
        "address": m.address,
        "state": m.state,
        "incarnation": m.incarnation,
        "role": m.role,
        "node": m.node,
        "version": m.version,
        "started": m.started,
        "addresses": dict(m.addresses),
        "host": m.host,
        "pci": m.pci,
    }


def render(members: list[admin_pb2.Member], output: str, now: float | None = None) -> str:
    if output in ("json", "yaml"):
        return dump([as_json(m) for m in members], output)
    now = time.time() if now is None else now
    return table(HEADERS, [row(m, now) for m in members])
