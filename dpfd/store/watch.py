"""Watches: many per Store, multiplexed on one gRPC Watch stream, resumed exactly after failures.

Each watch remembers the next revision it needs. When the stream breaks (member died, channel switched) the
multiplexer opens a new stream on the current endpoint and re-creates every watch from its own next
revision, so nothing is lost or repeated. etcd never splits one revision's events across responses, so
"next revision = last received + 1" is exact. A watch whose revision was compacted is suspended; its owner
re-lists the range and yields a RESET before it resumes.

A watch that begins with a RESET is created first, from "now", and the range is listed at the revision etcd
says it starts after. Listing first and then watching from the listed revision + 1 is just as exact, but any
write in between makes etcd start the watcher behind the store, to catch up in the background; etcd 3.4.23 was
seen to leave such a watcher without the events that followed (a controller test's member keys never arrived).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
from aetcd.rpc import rpc_pb2

from dpfd.store.conn import REQUIRE_LEADER, Connection, SharedStream, backoff, pump_requests
from dpfd.store.convert import events_from_pb, key_str
from dpfd.store.errors import Compacted, StoreError, StoreUnavailable
from dpfd.store.types import KeyValue, StoreStats, WatchEvent

log = logging.getLogger(__name__)

# (key, range_end, revision or 0 for the current one) -> (key-values, their revision)
Lister = Callable[[bytes, bytes, int], Awaitable[tuple[list[KeyValue], int]]]


@dataclass(frozen=True)
class _CompactedMark:
    compact_revision: int


@dataclass(frozen=True)
class _CreatedMark:
    """etcd created a watch asked to start "now": it starts after `revision`."""

    revision: int


class _ClosedMark:
    pass


_CLOSED = _ClosedMark()
_Item = WatchEvent | _CompactedMark | _CreatedMark | _ClosedMark | StoreError


@dataclass(eq=False)
class Registration:
    """One watch as the multiplexer sees it."""

    key: bytes
    range_end: bytes
    next_rev: int  # 0: from "now", until etcd says which revision that is
    queue: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    watch_id: int = 0  # id on the current stream; 0 while not created there

    def describe(self) -> str:
        return f"watch on {key_str(self.key)!r}" + (" (prefix)" if self.range_end else "")


class _StreamEnded(Exception):
    pass


class WatchMux(SharedStream):
    """The one Watch stream of a Store and the registrations carried on it."""

    task_name = "etcd-watch-stream"

    def __init__(self, conn: Connection, stats: StoreStats) -> None:
        super().__init__(conn, stats)
        self._regs: set[Registration] = set()
        self._by_id: dict[int, Registration] = {}
        self._next_id = 1

    def _has_users(self) -> bool:
        return bool(self._regs)

    @property
    def stream_open(self) -> bool:
        return self._outbox is not None

    def add(self, reg: Registration) -> None:
        if self._closed:
            raise StoreError(f"{reg.describe()}: the store is closed")
        self._regs.add(reg)
        if self._outbox is not None:
            self._create(reg, self._outbox)
        self._start()

    def remove(self, reg: Registration) -> None:
        self._regs.discard(reg)
        if reg.watch_id:
            self._by_id.pop(reg.watch_id, None)
            if self._outbox is not None:
                cancel = rpc_pb2.WatchCancelRequest(watch_id=reg.watch_id)
                self._outbox.put_nowait(rpc_pb2.WatchRequest(cancel_request=cancel))
            reg.watch_id = 0

    def _create(self, reg: Registration, outbox: asyncio.Queue[Any]) -> None:
        # Client-chosen ids (etcd >= 3.4) let many creates be in flight at once.
        wid, self._next_id = self._next_id, self._next_id + 1
        reg.watch_id = wid
        self._by_id[wid] = reg
        create = rpc_pb2.WatchCreateRequest(
            key=reg.key, range_end=reg.range_end, start_revision=reg.next_rev, watch_id=wid
        )
        outbox.put_nowait(rpc_pb2.WatchRequest(create_request=create))

    async def close(self) -> None:
        await super().close()
        for reg in list(self._regs):
            reg.queue.put_nowait(_CLOSED)
        self._regs.clear()

    async def _stream_once(self) -> bool:
        """Open a stream, create every watch on it, pump responses until it fails. True if any arrived."""
        conn = self._conn
        generation = conn.generation
        call = conn.stubs.watch.Watch(metadata=REQUIRE_LEADER)
        outbox: asyncio.Queue[Any] = asyncio.Queue()
        self._by_id = {}
        self._outbox = outbox
        for reg in list(self._regs):
            self._create(reg, outbox)
        writer = asyncio.get_running_loop().create_task(pump_requests(call, outbox, "watch"))
        received = False
        try:
            while True:
                resp = await call.read()
                if resp is grpc.aio.EOF:
                    raise _StreamEnded()
                received = True
                self._dispatch(resp)
        except grpc.aio.AioRpcError as err:
            kind = conn.classify(err, generation)
            log.info("etcd watch stream on %s failed (%s: %s)", conn.endpoint, err.code().name, err.details())
            if kind != "retry":
                conn.switch(generation)
        except _StreamEnded:
            conn.switch(generation)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self._closed or (task is not None and task.cancelling()):
                raise
            # call.read() raises CancelledError when the writer cancelled the call: just reopen.
        finally:
            self._outbox = None
            for reg in self._regs:
                reg.watch_id = 0
            self._by_id = {}
            writer.cancel()
            call.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        return received

    def _dispatch(self, resp: Any) -> None:
        reg = self._by_id.get(int(resp.watch_id))
        if reg is None:
            return  # a watch we already cancelled
        if resp.canceled:
            self._by_id.pop(reg.watch_id, None)
            reg.watch_id = 0
            self._regs.discard(reg)  # suspended until its owner re-lists or gives up
            if resp.compact_revision:
                reg.queue.put_nowait(_CompactedMark(int(resp.compact_revision)))
            else:
                reason = resp.cancel_reason or "no reason given"
                reg.queue.put_nowait(StoreError(f"{reg.describe()}: etcd cancelled the watch: {reason}"))
            return
        if resp.created and reg.next_rev == 0:
            reg.next_rev = int(resp.header.revision) + 1
            reg.queue.put_nowait(_CreatedMark(int(resp.header.revision)))
        if not resp.events:
            return  # created / progress notification
        events = events_from_pb(resp.events)
        for ev in events:
            if ev.revision >= reg.next_rev:  # never hand out a revision twice
                reg.queue.put_nowait(ev)
        reg.next_rev = max(reg.next_rev, events[-1].revision + 1)
        self._stats.watch_events += len(events)


class Watch:
    """Async iterator of WatchEvent over one key or prefix. See Store.watch_prefix."""

    def __init__(self, mux: WatchMux, lister: Lister, key: bytes, range_end: bytes, start_revision: int | None) -> None:
        if start_revision is not None and start_revision < 1:
            raise ValueError(f"watch on {key_str(key)!r}: start_revision must be >= 1, got {start_revision}")
        self._mux = mux
        self._lister = lister
        self._reg = Registration(key, range_end, next_rev=start_revision or 0)
        self._relist_needed = start_revision is None
        self._closed = False
        self.last_revision = 0  # revision of the last event (or RESET) handed out
        if start_revision is not None:
            mux.add(self._reg)

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        if self._closed:
            raise StopAsyncIteration
        if self._relist_needed:
            return await self._relist()
        item = await self._reg.queue.get()
        if isinstance(item, WatchEvent):
            self.last_revision = item.revision
            return item
        if isinstance(item, _CompactedMark):
            log.info("%s: revision %d compacted (at %d); re-listing", self._reg.describe(),
                     self._reg.next_rev, item.compact_revision)  # fmt: skip
            return await self._relist()
        if isinstance(item, StoreError):
            self._closed = True
            raise item
        raise StopAsyncIteration

    async def _relist(self) -> WatchEvent:
        """Watch from now, list the range at the revision the watch starts after (retrying while etcd is
        unreachable), and hand out the snapshot as a RESET: the events after it follow on exactly."""
        while not self._closed:
            self._mux.remove(self._reg)  # the watch of an earlier try, if any
            self._reg.queue = asyncio.Queue()  # nothing of an earlier try may follow the new RESET
            self._reg.next_rev = 0
            self._mux.add(self._reg)
            item = await self._reg.queue.get()
            if isinstance(item, StoreError):
                self._closed = True
                raise item
            if not isinstance(item, _CreatedMark):
                break  # closed
            try:
                kvs = await self._list_at(item.revision)
            except Compacted:
                continue  # compacted away already: start over from a newer now
            if self._closed:
                break
            self._relist_needed = False
            self.last_revision = item.revision
            return WatchEvent(type="RESET", revision=item.revision, snapshot=tuple(kvs))
        raise StopAsyncIteration

    async def _list_at(self, revision: int) -> list[KeyValue]:
        attempt = 0
        while True:
            try:
                kvs, _ = await self._lister(self._reg.key, self._reg.range_end, revision)
                return kvs
            except StoreUnavailable as err:
                attempt += 1
                log.info("%s: listing failed, retrying: %s", self._reg.describe(), err)
                await asyncio.sleep(backoff(attempt))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._mux.remove(self._reg)
        self._reg.queue.put_nowait(_CLOSED)

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
