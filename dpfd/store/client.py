"""Store: dpf's etcd client. Key-value, transactions, batched commits, watches and sessions.

Our own thin client over grpc.aio and etcd's generated stubs, so that reconnection, endpoint failover and
watch resumption behave exactly as documented here. One channel, one Watch stream and one LeaseKeepAlive
stream per Store, however many watches and sessions it serves.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import operator
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc.aio
from aetcd.rpc import rpc_pb2

from dpfd.metrics.instruments import ETCD_REQUEST_ERRORS, ETCD_REQUEST_SECONDS
from dpfd.metrics.registry import CounterValue, HistogramValue
from dpfd.store.batching import Batch, plan_batches
from dpfd.store.conn import Connection, member_status
from dpfd.store.convert import add_ops, key_bytes, kv_from_pb, txn_request
from dpfd.store.errors import Compacted, StoreError, StoreUnavailable
from dpfd.store.lease import LeaseKeeper, Session
from dpfd.store.types import (
    MAX_TXN_OPS,
    Compare,
    Delete,
    KeyValue,
    Op,
    Put,
    StoreStats,
    TxnResult,
    encode,
    prefix_range_end,
)
from dpfd.store.watch import Watch, WatchMux

log = logging.getLogger(__name__)


# Keys per Range page when listing a prefix: bounds the size of one response.
RANGE_PAGE = 1000
# Txns of one commit in flight at once. More gains little on a small cluster (etcd batches fsyncs itself).
PIPELINE_DEPTH = 4


@functools.cache
def _method(name: str) -> Callable[[Any], Any]:
    """`"kv.Range"` -> a picker of that method from the current stubs (made once per method name)."""
    return operator.attrgetter(name)


@functools.cache
def _operation(method: str) -> str:
    """`"kv.DeleteRange"` -> `"delete_range"`: the operation label of the etcd request metrics."""
    name = method.rpartition(".")[2].removeprefix("Lease")
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return f"lease_{snake}" if method.startswith("lease.") else snake


@functools.cache
def _instruments(method: str) -> tuple[HistogramValue, CounterValue]:
    """The latency and error series of one request method (looked up once, not per request)."""
    operation = _operation(method)
    return ETCD_REQUEST_SECONDS.labels(operation), ETCD_REQUEST_ERRORS.labels(operation)


class Store:
    """A connection to an etcd cluster. Create with `await Store.connect(endpoints)`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.stats = StoreStats()
        self._mux = WatchMux(conn, self.stats)
        self._keeper = LeaseKeeper(conn, self.stats)
        self._sessions: set[Session] = set()
        self._closed = False

    @classmethod
    async def connect(
        cls, endpoints: Sequence[str], *, dial_timeout: float = 5.0, request_timeout: float = 5.0
    ) -> Store:
        """Connect to the first endpoint (in the order given) whose member answers within dial_timeout."""
        conn = Connection(endpoints, request_timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + dial_timeout
        errors: dict[str, str] = {}
        index = 0
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                await conn.close()
                tried = "; ".join(f"{e}: {msg}" for e, msg in errors.items()) or "none tried"
                raise StoreUnavailable(f"Store.connect: no etcd member answered within {dial_timeout:g}s ({tried})")
            conn.use(index)
            try:
                await member_status(conn.stubs, deadline=min(remaining, max(0.5, dial_timeout / len(endpoints))))
                break
            except grpc.aio.AioRpcError as err:
                errors[conn.endpoint] = f"{err.code().name} {err.details()}"
            index = (index + 1) % len(endpoints)
            if index == 0:
                await asyncio.sleep(min(0.1, max(0.0, deadline - loop.time())))
        store = cls(conn)
        log.debug("connected to etcd at %s", conn.endpoint)
        return store

    @property
    def endpoint(self) -> str:
        """The endpoint this Store talks to now (it moves on when that member fails)."""
        return self._conn.endpoint

    @property
    def endpoints(self) -> list[str]:
        return list(self._conn.endpoints)

    async def close(self) -> None:
        """Stop every watch and session of this Store (sessions are left to expire; close them first to
        release their keys at once) and close the channel."""
        if self._closed:
            return
        self._closed = True
        for s in list(self._sessions):
            await s.abandon("store closed")
        await self._mux.close()
        await self._keeper.close()
        await self._conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(self, what: str, method: str, request: Any) -> Any:
        # Every unary etcd request of dpfd and the controller passes here: one place measures them all.
        seconds, errors = _instruments(method)
        started = time.perf_counter()
        try:
            resp = await self._conn.unary(what, _method(method), request)
        except StoreError:
            seconds.observe(time.perf_counter() - started)
            errors.inc()
            raise
        seconds.observe(time.perf_counter() - started)
        return resp

    # -- reading

    async def get(self, key: str) -> KeyValue | None:
        resp = await self._unary(f"get {key!r}", "kv.Range", rpc_pb2.RangeRequest(key=key_bytes(key)))
        self.stats.ranges += 1
        return kv_from_pb(resp.kvs[0]) if resp.kvs else None

    async def get_prefix(self, prefix: str) -> tuple[list[KeyValue], int]:
        """Every key under prefix, sorted by key, as of one revision (returned too). Pages through large
        ranges at that revision."""
        key = key_bytes(prefix)
        return await self.get_range(key, prefix_range_end(key))

    async def get_range(self, key: bytes, range_end: bytes, revision: int = 0) -> tuple[list[KeyValue], int]:
        """[key, range_end) (just key when range_end is empty), consistently at one revision: `revision`, or the
        current one when 0. Raises Compacted when a given revision has been compacted away."""
        what = f"list {key.decode(errors='replace')!r}"
        while True:
            try:
                return await self._range_pages(what, key, range_end, revision)
            except Compacted:
                if revision:
                    raise
                continue  # the snapshot revision was compacted between pages: start over at a newer one

    async def _range_pages(self, what: str, key: bytes, range_end: bytes, revision: int) -> tuple[list[KeyValue], int]:
        kvs: list[KeyValue] = []
        start = key
        while True:
            req = rpc_pb2.RangeRequest(key=start, range_end=range_end, limit=RANGE_PAGE, revision=revision)
            resp = await self._unary(what, "kv.Range", req)
            self.stats.ranges += 1
            if revision == 0:
                revision = int(resp.header.revision)
            kvs.extend(kv_from_pb(kv) for kv in resp.kvs)
            if not resp.more or not resp.kvs or not range_end:
                return kvs, revision
            start = bytes(resp.kvs[-1].key) + b"\x00"

    async def revision(self) -> int:
        """The cluster's current revision."""
        resp = await self._unary("read revision", "kv.Range", rpc_pb2.RangeRequest(key=b"\x00", limit=1))
        self.stats.ranges += 1
        return int(resp.header.revision)

    # -- writing

    async def put(self, key: str, value: bytes | str, *, lease: int = 0) -> int:
        req = rpc_pb2.PutRequest(key=key_bytes(key), value=encode(value), lease=lease)
        resp = await self._unary(f"put {key!r}", "kv.Put", req)
        self.stats.puts += 1
        return int(resp.header.revision)

    async def delete(self, key: str) -> bool:
        resp = await self._unary(f"delete {key!r}", "kv.DeleteRange", rpc_pb2.DeleteRangeRequest(key=key_bytes(key)))
        self.stats.deletes += 1
        return int(resp.deleted) > 0

    async def delete_prefix(self, prefix: str) -> int:
        key = key_bytes(prefix)
        req = rpc_pb2.DeleteRangeRequest(key=key, range_end=prefix_range_end(key))
        resp = await self._unary(f"delete prefix {prefix!r}", "kv.DeleteRange", req)
        self.stats.deletes += 1
        return int(resp.deleted)

    async def txn(self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()) -> TxnResult:
        """If every compare holds, apply success, else failure; atomically. Each side at most MAX_TXN_OPS."""
        first = compares[0].key if compares else (success[0].key if success else "")
        what = f"txn on {first!r} ({len(compares)} compares, {len(success)}/{len(failure)} ops)"
        for side, ops in (("success", success), ("failure", failure)):
            if len(ops) > MAX_TXN_OPS:
                raise StoreError(f"{what}: {side} has {len(ops)} ops; etcd allows at most {MAX_TXN_OPS} per txn")
        resp = await self._unary(what, "kv.Txn", txn_request(compares, success, failure))
        self.stats.txns += 1
        self.stats.txn_ops += len(success) if resp.succeeded else len(failure)
        return TxnResult(succeeded=bool(resp.succeeded), revision=int(resp.header.revision))

    async def commit(self, ops: Sequence[Op]) -> int:
        """Apply ops in order, in txns of at most MAX_TXN_OPS (each atomic; a few in flight at once, but
        never two that touch the same key; a single op goes as a plain put or delete). Returns the revision
        of the last applied; for no ops, the current revision. If a txn fails, those before it may have been
        applied; StoreError is raised."""
        if not ops:
            return await self.revision()
        if len(ops) == 1:
            return await self._commit_one(ops[0])
        batches = plan_batches(ops)
        if len(batches) == 1:  # most commits: one txn, without the pipeline's tasks
            return await self._send_txn(f"commit batch 1/1 ({len(ops)} ops from {ops[0].key!r})", batches[0])
        window = asyncio.Semaphore(PIPELINE_DEPTH)
        sent: list[tuple[Batch, asyncio.Task[int]]] = []
        try:
            for i, batch in enumerate(batches):
                await window.acquire()
                recent = sent[-PIPELINE_DEPTH:]  # the only ones that can still be in flight
                for _, t in recent:  # a failed batch stops the commit before anything more is written
                    if t.done():
                        t.result()
                deps = [t for b, t in recent if not t.done() and b.overlaps(batch)]
                if deps:  # same keys as a batch in flight: it must land after that one
                    await asyncio.wait(deps)
                    for t in deps:
                        t.result()
                what = f"commit batch {i + 1}/{len(batches)} ({len(batch.ops)} ops from {batch.ops[0].key!r})"
                sent.append((batch, asyncio.get_running_loop().create_task(self._send_batch(what, batch, window))))
            revisions = await asyncio.gather(*(t for _, t in sent))
        except BaseException:
            for _, t in sent:
                t.cancel()
            await asyncio.gather(*(t for _, t in sent), return_exceptions=True)
            raise
        return max(revisions)

    async def _send_batch(self, what: str, batch: Batch, window: asyncio.Semaphore) -> int:
        try:
            return await self._send_txn(what, batch)
        finally:
            window.release()

    async def _send_txn(self, what: str, batch: Batch) -> int:
        req = rpc_pb2.TxnRequest()
        add_ops(req.success, batch.ops)
        resp = await self._unary(what, "kv.Txn", req)
        self.stats.txns += 1
        self.stats.txn_ops += len(batch.ops)
        return int(resp.header.revision)

    async def _commit_one(self, op: Op) -> int:
        """One write needs no txn: a plain Put or DeleteRange is just as atomic, and cheaper for both sides."""
        if isinstance(op, Put):
            req = rpc_pb2.PutRequest(key=key_bytes(op.key), value=op.value, lease=op.lease)
            resp = await self._unary(f"commit batch 1/1 (1 ops from {op.key!r})", "kv.Put", req)
            self.stats.puts += 1
            return int(resp.header.revision)
        if isinstance(op, Delete):
            key = key_bytes(op.key)
            req = rpc_pb2.DeleteRangeRequest(key=key, range_end=prefix_range_end(key) if op.prefix else b"")
            resp = await self._unary(f"commit batch 1/1 (1 ops from {op.key!r})", "kv.DeleteRange", req)
            self.stats.deletes += 1
            return int(resp.header.revision)
        raise TypeError(f"commit: {op!r} is not a Put or Delete")

    async def compact(self, revision: int) -> None:
        """Drop history before revision (waits until etcd has physically done it)."""
        req = rpc_pb2.CompactionRequest(revision=revision, physical=True)
        await self._unary(f"compact to revision {revision}", "kv.Compact", req)

    # -- watching

    def watch_prefix(self, prefix: str, *, start_revision: int | None = None) -> Watch:
        """Every change under prefix. start_revision None: first a RESET with the current state, then every
        change after it. start_revision R: every change from revision R on. Resumes across failures with
        no loss or repeat; after a compaction it yields a RESET and continues."""
        key = key_bytes(prefix)
        return Watch(self._mux, self.get_range, key, prefix_range_end(key), start_revision)

    def watch_key(self, key: str, *, start_revision: int | None = None) -> Watch:
        """Like watch_prefix, for exactly one key."""
        return Watch(self._mux, self.get_range, key_bytes(key), b"", start_revision)

    # -- leases and sessions

    async def grant(self, ttl: float) -> tuple[int, int]:
        """A new lease: (id, TTL in whole seconds as etcd granted it)."""
        req = rpc_pb2.LeaseGrantRequest(TTL=max(1, math.ceil(ttl)))
        resp = await self._unary(f"grant lease (ttl {ttl:g}s)", "lease.LeaseGrant", req)
        if resp.error:
            raise StoreError(f"grant lease (ttl {ttl:g}s): {resp.error}")
        self.stats.lease_ops += 1
        return int(resp.ID), int(resp.TTL)

    async def revoke(self, lease_id: int) -> bool:
        """Revoke a lease, deleting its keys. False if etcd no longer had it."""
        try:
            await self._unary(
                f"revoke lease {lease_id:x}", "lease.LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=lease_id)
            )
        except StoreError as err:
            if "lease not found" in str(err):
                return False
            raise
        self.stats.lease_ops += 1
        return True

    async def time_to_live(self, lease_id: int) -> int:
        """Seconds the lease has left; -1 if it does not exist (expired or revoked)."""
        req = rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id)
        resp = await self._unary(f"lease {lease_id:x} time to live", "lease.LeaseTimeToLive", req)
        self.stats.lease_ops += 1
        return int(resp.TTL)

    async def session(self, ttl: float = 10.0) -> Session:
        """A lease of ttl seconds (rounded up; etcd may raise it to its minimum) kept alive every ttl/3."""
        if self._closed:
            raise StoreError("session: the store is closed")
        started = asyncio.get_running_loop().time()
        lease_id, granted = await self.grant(ttl)
        session = Session(self._keeper, self.revoke, lease_id, float(granted), started)
        self._sessions.add(session)
        session.add_lost_callback(lambda: self._sessions.discard(session))
        return session
