"""The Admin service (proto/dpf/admin/v1/admin.proto), over the parts it is given: the server knows nothing of how
the daemon is wired, and each part may be missing (gossip off, role dpu has no DPUs to provision), which the
matching RPCs answer with FAILED_PRECONDITION saying why."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import grpc

from dpfd.admin.errors import AdminError, Precondition, Unavailable
from dpfd.admin.fanout import Fanout, Missed, Synced
from dpfd.admin.messages import (
    action_message,
    dpu_message,
    drain_message,
    event_message,
    intent_message,
    log_message,
    member_message,
    missed_message,
    status_message,
)
from dpfd.admin.status import DaemonStatus
from dpfd.gossip.view import MemberInfo
from dpfd.proto.dpf.admin.v1 import admin_pb2, admin_pb2_grpc

if TYPE_CHECKING:
    from dpfd.admin.dpus import DpuDirectory
    from dpfd.admin.events import AdminEvent
    from dpfd.admin.logbuffer import LogLine
    from dpfd.admin.operations import HostOperations
    from dpfd.agent.intent_view import IntentEntry

GOSSIP_DISABLED = "gossip is disabled in /etc/dpf/dpfd.yaml (gossip.enabled)"
NOT_A_HOST = "this dpfd is role dpu: DPUs are provisioned by the dpfd of the host they sit in (ask that one)"
RECENT_EVENTS = 20  # GetDpu: the last events about the DPU

MembersSource = Callable[[], list[MemberInfo]]
StatusSource = Callable[[], DaemonStatus]
IntentsSource = Callable[[], "list[tuple[IntentEntry, dict[str, Any] | None]]"]
T = TypeVar("T")


@dataclass(frozen=True)
class HostAdmin:
    """The host role's parts: its DPUs, and the operator's requests about them."""

    dpus: DpuDirectory
    operations: HostOperations


class AdminService(admin_pb2_grpc.AdminServicer):
    def __init__(
        self,
        members: MembersSource | None = None,
        status: StatusSource | None = None,
        *,
        host: HostAdmin | None = None,
        not_host: str = NOT_A_HOST,
        intents: IntentsSource | None = None,
        events: Fanout[AdminEvent] | None = None,
        logs: Fanout[LogLine] | None = None,
    ) -> None:
        self._members = members
        self._status = status
        self._host = host
        self._not_host = not_host
        self._intents = intents
        self._events = events
        self._logs = logs

    # --- gossip and status ---------------------------------------------------------------------------------------

    async def ListMembers(
        self, request: admin_pb2.ListMembersRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListMembersResponse:
        if self._members is None:
            await _abort(context, Precondition(GOSSIP_DISABLED))
        try:
            members = self._members()
        except RuntimeError as e:  # the agent has not started yet (or has stopped)
            await _abort(context, Unavailable(f"gossip is not running: {e}"))
        return admin_pb2.ListMembersResponse(members=[member_message(m) for m in members])

    async def GetStatus(
        self, request: admin_pb2.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.GetStatusResponse:
        if self._status is None:
            return admin_pb2.GetStatusResponse()
        return status_message(self._status())

    # --- DPUs and intents ----------------------------------------------------------------------------------------

    async def ListDpus(
        self, request: admin_pb2.ListDpusRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListDpusResponse:
        host = await self._require_host(context)
        return admin_pb2.ListDpusResponse(dpus=[dpu_message(d) for d in host.dpus.list()])

    async def GetDpu(self, request: admin_pb2.GetDpuRequest, context: grpc.aio.ServicerContext) -> admin_pb2.Dpu:
        host = await self._require_host(context)
        dpu = await _answer(context, lambda: host.dpus.find(request.name, request.namespace))
        recent: list[AdminEvent] = []
        if self._events is not None:
            recent = [e for e in self._events.recent() if e.concerns("DPU", dpu.name, dpu.namespace)]
        return dpu_message(dpu, recent[-RECENT_EVENTS:])

    async def ListIntents(
        self, request: admin_pb2.ListIntentsRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.ListIntentsResponse:
        if self._intents is None:
            await _abort(context, Unavailable("this dpfd does not watch intents yet"))
        entries = [
            intent_message(entry, report)
            for entry, report in self._intents()
            if not request.kind or entry.ref.kind == request.kind
        ]
        return admin_pb2.ListIntentsResponse(intents=entries)

    # --- streams -------------------------------------------------------------------------------------------------

    async def WatchEvents(
        self, request: admin_pb2.WatchEventsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[admin_pb2.Event]:
        if self._events is None:
            await _abort(context, Unavailable("this dpfd keeps no events"))
        replay = len(self._events.recent()) if request.replay else 0
        with self._events.subscribe(replay=replay, synced=True) as events:
            while True:
                item = await events.next()
                if isinstance(item, Missed):
                    yield missed_message(item.count, time.time())
                elif isinstance(item, Synced):
                    yield admin_pb2.Event(at=time.time(), type="synced")
                elif item.concerns(request.kind, request.name):
                    yield event_message(item)

    async def StreamLogs(
        self, request: admin_pb2.StreamLogsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[admin_pb2.LogRecord]:
        if self._logs is None:
            await _abort(context, Unavailable("this dpfd keeps no log lines"))
        kept = len(self._logs.recent())
        tail = kept if request.tail == 0 else min(request.tail, kept)
        if not request.follow:
            for line in self._logs.recent()[-tail:] if tail else []:
                yield log_message(line)
            return
        with self._logs.subscribe(replay=tail) as lines:
            while True:
                item = await lines.next()
                if isinstance(item, Missed):
                    yield admin_pb2.LogRecord(at=time.time(), missed=item.count)
                elif not isinstance(item, Synced):
                    yield log_message(item)

    # --- requests ------------------------------------------------------------------------------------------------

    async def RetryDpu(
        self, request: admin_pb2.DpuActionRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.DpuActionResponse:
        host = await self._require_host(context)
        result = await _answer(context, lambda: host.operations.retry(request.name, request.namespace))
        return action_message(result)

    async def ReflashDpu(
        self, request: admin_pb2.DpuActionRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.DpuActionResponse:
        host = await self._require_host(context)
        result = await _answer(context, lambda: host.operations.reflash(request.name, request.namespace))
        return action_message(result)

    async def Drain(self, request: admin_pb2.DrainRequest, context: grpc.aio.ServicerContext) -> admin_pb2.DrainStatus:
        host = await self._require_host(context)
        return drain_message(
            await _answer(context, lambda: host.operations.drain(request.reason)), host.operations.node
        )

    async def Undrain(
        self, request: admin_pb2.UndrainRequest, context: grpc.aio.ServicerContext
    ) -> admin_pb2.DrainStatus:
        host = await self._require_host(context)
        return drain_message(await _answer(context, host.operations.undrain), host.operations.node)

    async def _require_host(self, context: grpc.aio.ServicerContext) -> HostAdmin:
        if self._host is None:
            await _abort(context, Precondition(self._not_host))
        return self._host


async def _answer(context: grpc.aio.ServicerContext, call: Callable[[], T]) -> T:
    """``call()``, with its refusal (AdminError) answered by its status code and message."""
    try:
        return call()
    except AdminError as e:
        await _abort(context, e)


async def _abort(context: grpc.aio.ServicerContext, error: AdminError) -> NoReturn:
    await context.abort(error.code, error.message)
    raise AssertionError("not reached: abort raises")  # for the type checker
