"""The Admin service (proto/dpf/admin/v1/admin.proto): the daemon's gossip view and status, read through callables
so the server knows nothing of how the daemon is wired."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from dpfd.admin.status import DaemonStatus
from dpfd.gossip.view import MemberInfo
from dpfd.proto.dpf.admin.v1 import admin_pb2, admin_pb2_grpc

GOSSIP_DISABLED = "gossip is disabled in /etc/dpf/dpfd.yaml (gossip.enabled)"

MembersSource = Callable[[], list[MemberInfo]]
StatusSource = Callable[[], DaemonStatus]


def member_message(m: MemberInfo) -> admin_pb2.Member:
    msg = admin_pb2.Member(name=m.name, address=m.addr, state=m.state, incarnation=m.incarnation)
    if m.meta is not None:
        msg.role = m.meta.role
        msg.node = m.meta.node
        msg.version = m.meta.version
        msg.started = m.meta.started
        msg.addresses.update(m.meta.addresses)
        msg.host = m.meta.host
        msg.pci = m.meta.pci
    return msg


def status_message(s: DaemonStatus) -> admin_pb2.GetStatusResponse:
    msg = admin_pb2.GetStatusResponse(node=s.node, role=s.role, version=s.version, started=s.started)
    if s.gossip is not None:
        g = s.gossip
        msg.gossip.CopyFrom(
            admin_pb2.GossipStatus(
                enabled=True,
                name=g.name,
                address=g.address,
                health_score=g.health_score,
                alive=g.alive,
                suspect=g.suspect,
                dead=g.dead,
                left=g.left,
            )
        )
    return msg


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(self, members: MembersSource | None, status: StatusSource | None) -> None:
        self._members = members
        self._status = status

    async def ListMembers(
        self, request: admin_pb2.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListMembersResponse:
        if self._members is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, GOSSIP_DISABLED)
            return admin_pb2.ListMembersResponse()  # not reached: abort raises
        try:
            members = self._members()
        except RuntimeError as e:  # the agent has not started yet (or has stopped)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"gossip is not running: {e}")
            return admin_pb2.ListMembersResponse()
        return admin_pb2.ListMembersResponse(members=[member_message(m) for m in members])

    async def GetStatus(
        self, request: admin_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetStatusResponse:
        if self._status is None:
            return admin_pb2.GetStatusResponse()
        return status_message(self._status())
