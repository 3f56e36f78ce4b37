"""IntentPublisher: reconcilers declare the full intent set of each source object; etcd gets only the diff.

The publisher remembers what it last wrote (loaded from `/dpf/v1/intents/` at start, so a new leader or a
restarted controller writes nothing for intents that did not change). Changes are coalesced: the flusher
waits a few milliseconds after the first change unless a whole transaction's worth (128 ops) is already
waiting, then writes every pending change in transactions of at most 128 operations. A burst of 1,000
changes therefore becomes about 8 transactions.

With a `fence` (compares that hold only while this controller is the leader) every transaction carries
it, so a deposed leader cannot overwrite its successor's intents: a failed compare stops the publisher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from controller.refs import same_ref, shared
from dpfd.api.intents import Intent, ObjectRef
from dpfd.store import MAX_TXN_OPS, Compare, Delete, Put, Store
from dpfd.store import keys as store_keys

log = logging.getLogger(__name__)

Fence = Callable[[], Sequence[Compare]]


class FenceLost(Exception):
    """A fenced transaction's compare failed: this controller is no longer allowed to write intents."""


@dataclass
class PublisherStats:
    flushes: int = 0
    txns: int = 0
    puts: int = 0
    deletes: int = 0
    failures: int = 0


def _canonical(value: bytes) -> bytes:
    """Intent JSON as this publisher would write it, so a reload compares equal to a re-declare."""
    try:
        return Intent.model_validate_json(value).model_dump_json().encode()
    except ValidationError:
        return value  # not an intent we can read: any declaration will overwrite or delete it


class IntentPublisher:
    def __init__(
        self,
        store: Store,
        *,
        flush_delay: float = 0.005,
        max_ops_per_flush: int = 1024,
        fence: Fence | None = None,
        retry_initial: float = 0.1,
        retry_max: float = 5.0,
    ) -> None:
        self.store = store
        self.flush_delay = flush_delay
        self.max_ops_per_flush = max_ops_per_flush
        self.fence = fence
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.stats = PublisherStats()
        self.stopped = asyncio.Event()  # set when the flusher ended (stop, or FenceLost)
        self._written: dict[str, bytes] = {}  # what etcd holds, as far as this publisher knows
        self._desired: dict[str, bytes] = {}
        self._owner: dict[str, ObjectRef] = {}  # intent key -> the source that declared it
        self._by_source: dict[ObjectRef, set[str]] = {}
        self._dirty: dict[str, None] = {}  # insertion-ordered set of keys whose desired != written
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load the intents already in etcd, then start flushing."""
        kvs, _rev = await self.store.get_prefix(store_keys.intents_prefix())
        prefix = store_keys.intents_prefix()
        for kv in kvs:
            try:
                _node, parsed = store_keys.parse_node_ref(kv.key, prefix)
            except ValueError:
                log.warning("ignoring malformed intent key", extra={"key": kv.key})
                continue
            ref = shared(parsed)
            value = _canonical(kv.value)
            self._written[kv.key] = value
            self._desired[kv.key] = value
            self._owner[kv.key] = ref
            self._by_source.setdefault(ref, set()).add(kv.key)
        self._task = asyncio.create_task(self._flush_loop(), name="intent-publisher")
        log.info("intent publisher started", extra={"loaded": len(kvs)})

    async def stop(self, *, flush: bool = True, flush_timeout: float = 5.0) -> None:
        """Stop the flusher; with `flush`, first write what is pending (for at most `flush_timeout`)."""
        if self._task is None:
            return
        if flush and not self._task.done():
            try:
                await asyncio.wait_for(self.wait_flushed(), flush_timeout)
            except TimeoutError:
                log.warning("intent publisher stopped with changes unwritten", extra={"pending": len(self._dirty)})
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, FenceLost):
            await self._task
        self.stopped.set()

    async def wait_flushed(self) -> None:
        """Return once every declared change has reached etcd (raises if the flusher died)."""
        while True:
            if self._task is not None and self._task.done():
                if self.error is not None:
                    raise self.error
                return
            if self._idle.is_set() and not self._dirty:
                return
            idle = asyncio.create_task(self._idle.wait())
            assert self._task is not None
            await asyncio.wait({idle, self._task}, return_when=asyncio.FIRST_COMPLETED)
            idle.cancel()

    # -- declarations -----------------------------------------------------------------------------
    def declare(self, source: ObjectRef, intents: Iterable[Intent]) -> None:
        """Set the complete intent set of `source`; intents it declared before and not now are deleted."""
        new = {store_keys.intent_key(i.node, i.ref): i.model_dump_json().encode() for i in intents}
        old_keys = self._by_source.get(source, set())
        for key in old_keys - new.keys():
            owner = self._owner.get(key)
            if owner is not None and same_ref(owner, source):
                del self._owner[key]
                self._desired.pop(key, None)
                self._mark(key)
        for key, value in new.items():
            previous_owner = self._owner.get(key)
            if previous_owner is not None and not same_ref(previous_owner, source):
                self._by_source.get(previous_owner, set()).discard(key)
            self._owner[key] = source
            if self._desired.get(key) != value:
                self._desired[key] = value
                self._mark(key)
        if new:
            self._by_source[source] = set(new)
        else:
            self._by_source.pop(source, None)

    def sources(self, kind: str | None = None) -> list[ObjectRef]:
        """Sources that currently have intents (all, or of one kind)."""
        return [s for s in self._by_source if kind is None or s.kind == kind]

    def intents_of(self, source: ObjectRef) -> dict[str, Intent]:
        """The intents `source` currently declares, by etcd key."""
        return {
            k: Intent.model_validate_json(self._desired[k])
            for k in self._by_source.get(source, ())
            if k in self._desired
        }

    @property
    def pending(self) -> int:
        return len(self._dirty)

    # -- flushing ---------------------------------------------------------------------------------
    def _mark(self, key: str) -> None:
        if self._desired.get(key) != self._written.get(key) or key in self._dirty:
            self._dirty[key] = None
            self._idle.clear()
            self._wake.set()

    async def _flush_loop(self) -> None:
        delay = self.retry_initial
        try:
            while True:
                if not self._dirty:
                    self._idle.set()
                    self._wake.clear()
                    await self._wake.wait()
                    # Coalesce a burst unless a full transaction is already waiting.
                    if len(self._dirty) < MAX_TXN_OPS:
                        await asyncio.sleep(self.flush_delay)
                try:
                    await self._flush_once()
                    delay = self.retry_initial
                except FenceLost:
                    raise
                except Exception as exc:
                    self.stats.failures += 1
                    log.warning(
                        "writing intents failed, retrying",
                        extra={"error": repr(exc), "pending": len(self._dirty)},
                    )
                    await asyncio.sleep(delay)
                    delay = min(self.retry_max, delay * 2)
        except FenceLost as exc:
            self.error = exc
            log.warning("intent publisher fenced off: no longer the leader")
            raise
        finally:
            self.stopped.set()

    async def _flush_once(self) -> None:
        batch: list[str] = []
        for key in self._dirty:
            batch.append(key)
            if len(batch) >= self.max_ops_per_flush:
                break
        ops: list[Put | Delete] = []
        for key in batch:
            del self._dirty[key]
            want, have = self._desired.get(key), self._written.get(key)
            if want == have:
                continue
            ops.append(Put(key, want) if want is not None else Delete(key))
        if not ops:
            return
        try:
            await self._commit(ops)
        except BaseException:
            for op in ops:  # writes are idempotent: retry all of them
                self._dirty[op.key] = None
            raise
        self.stats.flushes += 1
        for op in ops:
            if isinstance(op, Put):
                self._written[op.key] = op.value
                self.stats.puts += 1
            else:
                self._written.pop(op.key, None)
                self.stats.deletes += 1

    async def _commit(self, ops: list[Put | Delete]) -> None:
        if self.fence is None:
            await self.store.commit(ops)
            self.stats.txns += (len(ops) + MAX_TXN_OPS - 1) // MAX_TXN_OPS
            return
        compares = list(self.fence())
        for i in range(0, len(ops), MAX_TXN_OPS):
            chunk = ops[i : i + MAX_TXN_OPS]
            result = await self.store.txn(compares, chunk, [])
            self.stats.txns += 1
            if not result.succeeded:
                raise FenceLost("intent transaction refused: the leader fence no longer holds")
