"""Sessions: a lease kept alive every ttl/3 over the Store's one LeaseKeepAlive stream.

As in etcd's Go client, a session counts as lost when etcd says the lease is gone (keepalive answered with
TTL 0: expired or revoked) or when no keepalive has been acknowledged for the lease's TTL: from then on the
lease may have expired, so nothing bound to it can be trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from aetcd.rpc import rpc_pb2

from dpfd.store.conn import REQUIRE_LEADER, Connection, SharedStream, pump_requests
from dpfd.store.errors import StoreError
from dpfd.store.types import StoreStats

log = logging.getLogger(__name__)


class LeaseKeeper(SharedStream):
    """The Store's keepalive stream, shared by all its sessions; answers are routed by lease id."""

    task_name = "etcd-lease-keepalive"

    def __init__(self, conn: Connection, stats: StoreStats) -> None:
        super().__init__(conn, stats)
        self._sessions: dict[int, Session] = {}

    def _has_users(self) -> bool:
        return bool(self._sessions)

    def add(self, session: Session) -> None:
        self._sessions[session.lease_id] = session
        self._start()

    def remove(self, session: Session) -> None:
        self._sessions.pop(session.lease_id, None)

    def send(self, session: Session) -> None:
        """Queue one keepalive; dropped while the stream is down (the session's deadline covers that)."""
        if self._outbox is not None:
            session.sent(asyncio.get_running_loop().time())
            self._outbox.put_nowait(rpc_pb2.LeaseKeepAliveRequest(ID=session.lease_id))

    async def _stream_once(self) -> bool:
        conn = self._conn
        generation = conn.generation
        call = conn.stubs.lease.LeaseKeepAlive(metadata=REQUIRE_LEADER)
        outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._outbox = outbox
        for s in self._sessions.values():
            s.forget_pending()
            self.send(s)  # renew at once after a reconnect instead of waiting for the next tick
        writer = asyncio.get_running_loop().create_task(pump_requests(call, outbox, "keepalive"))
        received = False
        try:
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    conn.switch(generation)
                    break
                received = True
                owner = self._sessions.get(int(resp.ID))
                if owner is not None:
                    self._stats.lease_ops += 1
                    owner.acknowledged(int(resp.TTL))
        except grpc.aio.AioRpcError as err:
            log.info("etcd keepalive stream on %s failed (%s: %s)", conn.endpoint, err.code().name, err.details())
            if conn.classify(err, generation) != "retry":
                conn.switch(generation)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed or (task is not None and task.cancelling()):
                raise
        finally:
            self._outbox = None
            writer.cancel()
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return received


class Session:
    """A lease kept alive in the background. Bind keys to `lease_id`; watch `lost` (or add a callback)."""

    def __init__(
        self,
        keeper: LeaseKeeper,
        revoke: Callable[[int], Awaitable[bool]],
        lease_id: int,
        ttl: float,
        granted_at: float,
    ) -> None:
        self.lease_id = lease_id
        self.ttl = ttl
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self._keeper = keeper
        self._revoke = revoke
        self._callbacks: list[Callable[[], None]] = []
        self._expires_at = granted_at + ttl  # our conservative view of when etcd would drop the lease
        self._pending: deque[float] = deque()  # send times of unanswered keepalives
        self._loop = asyncio.get_running_loop()
        self._interval = ttl / 3
        # A timer, not a task: a task sleeping in wait_for cost more per keepalive than sending it.
        self._timer: asyncio.TimerHandle | None = None
        self._expiry_revoke: asyncio.Task[None] | None = None
        keeper.add(self)
        self._schedule(self._loop.time())

    def add_lost_callback(self, cb: Callable[[], None]) -> None:
        """Call cb once the session is lost (or closed); at once if it already is."""
        if self.lost.is_set():
            cb()
        else:
            self._callbacks.append(cb)

    # -- called by the keeper

    def sent(self, at: float) -> None:
        self._pending.append(at)

    def forget_pending(self) -> None:
        self._pending.clear()

    def acknowledged(self, ttl_left: int) -> None:
        now = self._loop.time()
        sent_at = self._pending.popleft() if self._pending else now
        if ttl_left <= 0:
            self._mark_lost("etcd says the lease is gone (expired or revoked)")
            return
        # The lease was renewed no earlier than when the request left, so count from then.
        self._expires_at = max(self._expires_at, sent_at + ttl_left)

    # --

    def _schedule(self, now: float) -> None:
        self._timer = self._loop.call_at(now + min(self._interval, max(0.0, self._expires_at - now)), self._tick)

    def _tick(self) -> None:
        """Every ttl/3: send a keepalive, or give the session up once no acknowledgement came for a TTL."""
        self._timer = None
        if self.lost.is_set():
            return
        now = self._loop.time()
        if now >= self._expires_at:
            self._mark_lost(f"no keepalive acknowledged for {self.ttl:g}s")
            self._expiry_revoke = self._loop.create_task(self._revoke_after_expiry())
            return
        self._keeper.send(self)
        self._schedule(now)

    async def _revoke_after_expiry(self) -> None:
        with contextlib.suppress(StoreError):
            await self._revoke(self.lease_id)  # in case etcd still has it: free what it holds

    async def _stop_background(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task = self._expiry_revoke
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _mark_lost(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.lost_reason = reason
        log.info("etcd session %x lost: %s", self.lease_id, reason)
        self._keeper.remove(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.lost.set()
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            try:
                cb()
            except Exception:
                log.exception("lost callback of session %x failed", self.lease_id)

    async def close(self) -> None:
        """Revoke the lease (best effort) and stop keeping it alive. Sets `lost` and runs the callbacks."""
        was_lost = self.lost.is_set()
        self._keeper.remove(self)
        await self._stop_background()
        if not was_lost:
            try:
                await self._revoke(self.lease_id)
            except StoreError as err:
                log.info("revoking lease %x on close failed (it will expire): %s", self.lease_id, err)
        self._mark_lost("closed")

    async def abandon(self, reason: str = "abandoned") -> None:
        """Stop keeping the lease alive without revoking it; it expires after its TTL (for Store.close)."""
        self._keeper.remove(self)
        await self._stop_background()
        self._mark_lost(reason)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
