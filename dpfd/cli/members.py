"""`dpfctl members`: the gossip view of the local dpfd, asked over its admin socket.

Unlike `dpfctl get members` (who holds a session in etcd), this is what the failure detector of one daemon sees
right now: alive, suspect, dead or left, seconds after it happens."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from typing import Any

import grpc

from dpfd.admin.server import DEFAULT_SOCKET
from dpfd.proto.dpf.admin.v1 import admin_pb2, admin_pb2_grpc

__all__ = ["DEFAULT_SOCKET", "SOCKET_ENV", "AdminUnreachable", "list_members", "render", "socket_path"]
SOCKET_ENV = "DPF_ADMIN_SOCKET"
TIMEOUT = 5.0

HEADERS = ("NAME", "STATE", "ROLE", "ADDRESS", "HOST/PCI", "INCARNATION", "AGE")


class AdminUnreachable(Exception):
    """The daemon could not be asked, or would not answer: one line for the user."""


def socket_path(arg: str | None) -> str:
    return arg or os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET


def list_members(path: str, timeout: float = TIMEOUT) -> list[admin_pb2.Member]:
    with grpc.insecure_channel(f"unix:{path}") as channel:
        try:
            reply = admin_pb2_grpc.AdminStub(channel).ListMembers(admin_pb2.ListMembersRequest(), timeout=timeout)
        except grpc.RpcError as e:
            raise AdminUnreachable(_explain(e, path)) from None
    return list(reply.members)


def _explain(e: grpc.RpcError, path: str) -> str:
    code, details = e.code(), e.details() or ""
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.FAILED_PRECONDITION):
        return details  # the daemon says it in full
    if code == grpc.StatusCode.UNAVAILABLE:
        return _why_unreachable(path) or f"cannot reach dpfd at {path}: {details}"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return f"dpfd at {path} did not answer within {TIMEOUT:g}s"
    return f"dpfd at {path} answered {code.name}: {details}"


def _why_unreachable(path: str) -> str | None:
    """gRPC's UNAVAILABLE says little; a plain connect tells a missing socket from a refused or forbidden one."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2.0)
        try:
            s.connect(path)
        except FileNotFoundError:
            return f"no dpfd admin socket at {path} (is dpfd running? --socket or ${SOCKET_ENV} name another)"
        except PermissionError:
            return f"permission denied on {path}: run as root or as a member of group dpf"
        except ConnectionRefusedError:
            return f"nothing listens on {path} (dpfd is not running, or stopped uncleanly)"
        except OSError as e:
            return f"cannot connect to {path}: {errno.errorcode.get(e.errno or 0, '')} {e.strerror}".strip()
    return None


def age(started: float, now: float) -> str:
    if started <= 0:
        return ""
    seconds = max(0, int(now - started))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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
    if output == "json":
        return json.dumps([as_json(m) for m in members], indent=2)
    now = time.time() if now is None else now
    rows = [list(HEADERS)] + [row(m, now) for m in members]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
