"""One gRPC channel to one etcd member at a time, switching to the next endpoint when that member fails.

Unary requests are retried here: on a connection failure on the next endpoint, on etcd's transient
errors (leader changed, no leader, timeouts) after a short backoff, until the request timeout is spent.
A retried write may already have been applied once; every write dpf makes is idempotent or a txn whose
caller re-reads on failure, so that is safe (etcd's Go client makes the same trade for its retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from aetcd.rpc import rpc_pb2, rpc_pb2_grpc

from dpfd.store.errors import Compacted, StoreError, StoreUnavailable
from dpfd.store.types import StoreStats

log = logging.getLogger(__name__)

# Streams (watch, keepalive) carry this so that a member cut off from its leader closes them instead of
# going silent; the same metadata etcd's Go client sends (rpctypes.MetadataRequireLeaderKey).
REQUIRE_LEADER = (("hasleader", "true"),)

_CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", 2**31 - 1),
    ("grpc.max_send_message_length", 2**31 - 1),
    ("grpc.enable_retries", 0),  # we retry ourselves, across endpoints
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Detect a hung member under a long-lived stream. etcd's default --grpc-keepalive-min-time is 5 s:
    # pinging more often (or without an open call) gets the connection closed with too_many_pings.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
]

# etcd answers these (all codes.Unavailable) while an election or a slow apply is in progress; the member
# itself is healthy, so retry on it rather than switching endpoints.
_TRANSIENT_DETAILS = (
    "etcdserver: leader changed",
    "etcdserver: request timed out",
    "etcdserver: too many requests",
    "etcdserver: server stopped",
    "raft proposal dropped",
)


@dataclass(frozen=True)
class Stubs:
    kv: Any
    watch: Any
    lease: Any
    maintenance: Any


def endpoint_target(endpoint: str) -> str:
    """`http://host:port` (or plain `host:port`) to a gRPC target."""
    for scheme in ("http://", "https://", "unix://"):
        if endpoint.startswith(scheme):
            if scheme == "https://":
                raise StoreError(f"endpoint {endpoint!r}: TLS endpoints are not supported yet")
            return endpoint.removeprefix(scheme) if scheme != "unix://" else endpoint
    return endpoint


def backoff(attempt: int, base: float = 0.05, cap: float = 1.0) -> float:
    """Exponential backoff with jitter, so that many clients do not retry in step."""
    return float(min(cap, base * (2 ** min(attempt, 10))) * (0.5 + random.random() / 2))


class Connection:
    """The current channel (`stubs`, `generation`) and the rules for moving to the next endpoint."""

    def __init__(self, endpoints: Sequence[str], request_timeout: float) -> None:
        if not endpoints:
            raise StoreError("Store.connect: endpoints is empty; give at least one etcd client URL")
        self.endpoints = list(endpoints)
        self._targets = [endpoint_target(e) for e in endpoints]
        self.request_timeout = request_timeout
        # A proposal sent to a follower just as the leader dies is lost and the call hangs until its
        # deadline, so each attempt gets only part of the request timeout and is then retried.
        self.attempt_timeout = min(request_timeout, max(1.0, request_timeout / 4))
        self._index = 0
        self.generation = 0
        self._channel: grpc.aio.Channel | None = None
        self.stubs = self._open(0)
        self.switches = 0
        self._closing: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def endpoint(self) -> str:
        """The endpoint the channel currently talks to."""
        return self.endpoints[self._index]

    def _open(self, index: int) -> Stubs:
        self._index = index
        self._channel = grpc.aio.insecure_channel(self._targets[index], options=_CHANNEL_OPTIONS)
        ch = self._channel
        return Stubs(
            kv=rpc_pb2_grpc.KVStub(ch),
            watch=rpc_pb2_grpc.WatchStub(ch),
            lease=rpc_pb2_grpc.LeaseStub(ch),
            maintenance=rpc_pb2_grpc.MaintenanceStub(ch),
        )

    def use(self, index: int) -> None:
        """Point the channel at endpoints[index] (used by connect to start on a member that answered)."""
        if index != self._index:
            self._replace(index)

    def switch(self, generation: int) -> None:
        """The endpoint of `generation` failed: move to the next one, unless someone already did."""
        if generation != self.generation or self.closed:
            return
        log.info("etcd endpoint %s failed; switching to the next", self.endpoint)
        self._replace((self._index + 1) % len(self._targets))

    def _replace(self, index: int) -> None:
        old = self._channel
        self.stubs = self._open(index)
        self.generation += 1
        self.switches += 1
        if old is not None:
            # Calls in flight on the old member get one attempt's time to finish (so that a request etcd
            # has applied is not cut off and sent again); the rest see a stale generation and retry.
            task = asyncio.get_running_loop().create_task(old.close(grace=self.attempt_timeout))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        self.closed = True
        if self._channel is not None:
            await self._channel.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def classify(self, err: grpc.aio.AioRpcError, generation: int) -> str:
        """What to do about a failed call: "switch" (the member is unusable), "retry" (transient; same
        member) or "fatal" (retrying will not help)."""
        code, details = err.code(), err.details() or ""
        if generation != self.generation:
            return "retry"  # the call died with a channel we already replaced
        if code == grpc.StatusCode.UNAVAILABLE:
            if details.startswith("etcdserver:") and "no leader" not in details:
                return "retry"
            return "switch"
        if code == grpc.StatusCode.CANCELLED:
            return "switch"
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return "retry"  # the caller switches after repeated timeouts on one member
        if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.RESOURCE_EXHAUSTED) and any(
            t in details for t in _TRANSIENT_DETAILS
        ):
            return "retry"
        return "fatal"

    async def unary(self, what: str, call: Callable[[Stubs], Any], request: Any) -> Any:
        """Send one unary request, retrying as described in the module docstring.

        `call` picks the method from the current stubs, e.g. `lambda s: s.kv.Range`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout
        attempt = 0
        timeouts_here = 0
        last: grpc.aio.AioRpcError | None = None
        while True:
            if self.closed:
                raise StoreError(f"{what}: the store is closed")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise StoreUnavailable(
                    f"{what}: no etcd endpoint answered within {self.request_timeout:g}s "
                    f"(endpoints {', '.join(self.endpoints)}; last error: {_describe(last)})"
                )
            generation = self.generation
            try:
                return await call(self.stubs)(request, timeout=min(remaining, self.attempt_timeout))
            except asyncio.CancelledError:
                # grpc.aio reports a call cut off by closing its channel as a bare CancelledError. If the
                # channel was replaced under us (and nobody is cancelling this task), retry on the new one.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                if self.closed:
                    raise StoreError(f"{what}: the store was closed while the request was in flight") from None
                if generation == self.generation:
                    raise
                continue
            except grpc.aio.AioRpcError as err:
                last = err
                kind = self.classify(err, generation)
                if kind == "fatal":
                    raise to_store_error(what, err) from None
                if err.code() == grpc.StatusCode.DEADLINE_EXCEEDED and generation == self.generation:
                    timeouts_here += 1
                    if timeouts_here >= 2:  # twice in a row: the member is likely hung or cut off
                        kind = "switch"
                if kind == "switch":
                    self.switch(generation)
                    timeouts_here = 0
                attempt += 1
                # A full round of endpoints failed, or etcd said "not now": back off before the next try.
                if kind == "retry" or attempt % len(self._targets) == 0:
                    await asyncio.sleep(min(backoff(attempt), max(0.0, deadline - loop.time())))


def _describe(err: grpc.aio.AioRpcError | None) -> str:
    if err is None:
        return "none"
    return f"{err.code().name}: {err.details()}"


def to_store_error(what: str, err: grpc.aio.AioRpcError) -> StoreError:
    details = err.details() or ""
    if "required revision has been compacted" in details:
        return Compacted(f"{what}: {details}")
    if err.code() == grpc.StatusCode.UNAVAILABLE:
        return StoreUnavailable(f"{what}: {_describe(err)}")
    return StoreError(f"{what}: etcd refused the request: {_describe(err)}")


async def member_status(stubs: Stubs, deadline: float) -> Any:
    """Ask one member for its status (gRPC deadline in seconds); raises AioRpcError if it does not answer."""
    return await stubs.maintenance.Status(rpc_pb2.StatusRequest(), timeout=deadline)


async def pump_requests(call: Any, outbox: asyncio.Queue[Any], stream: str) -> None:
    """Write what is queued in `outbox` to a bidirectional stream until cancelled. A failed write cancels the
    call, so its reader notices the broken stream too."""
    try:
        while True:
            await call.write(await outbox.get())
    except asyncio.CancelledError:
        raise
    except Exception as err:
        log.debug("etcd %s stream write failed: %r", stream, err)
        call.cancel()


class SharedStream:
    """One long-lived bidirectional etcd stream that many users of a Store share (all its watches, or all its
    sessions' keepalives): opened when the first user comes, reopened with backoff whenever it breaks, ended
    when the Store closes. Subclasses open the stream and route its answers (`_stream_once`)."""

    task_name = "etcd-stream"

    def __init__(self, conn: Connection, stats: StoreStats) -> None:
        self._conn = conn
        self._stats = stats
        self._outbox: asyncio.Queue[Any] | None = None  # requests for the open stream; None while it is down
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def _has_users(self) -> bool:
        raise NotImplementedError

    async def _stream_once(self) -> bool:
        """Open the stream and serve it until it fails; True if any answer arrived."""
        raise NotImplementedError

    def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.task_name)
        self._wake.set()

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            if not self._has_users():
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                received = await self._stream_once()
            except Exception:  # a bug here must not silently stop every user of the stream
                log.exception("%s failed unexpectedly; reopening", self.task_name)
                received = False
            attempt = 0 if received else attempt + 1
            self._stats.reconnects += 1
            await asyncio.sleep(backoff(attempt))
