"""Semaphore: at most `limit` holders at once. Each contender puts <prefix>/<lease hex> on its session
lease; the first `limit` keys by create revision hold it, the others wait in that (FIFO) order.

Every contender must use the same limit; etcd does not store it.
"""

from __future__ import annotations

import asyncio
import contextlib

from dpfd.store.client import Store
from dpfd.store.coordination import check_session, lease_must_exist, unless_lost
from dpfd.store.errors import SessionLost, StoreError
from dpfd.store.keys import semaphore_prefix
from dpfd.store.lease import Session
from dpfd.store.types import Compare, Put


class Semaphore:
    def __init__(self, store: Store, session: Session, name: str, limit: int, *, holder: str = "") -> None:
        if limit < 1:
            raise ValueError(f"semaphore {name!r}: limit must be >= 1, got {limit}")
        self.name = name
        self.limit = limit
        self.prefix = semaphore_prefix(name)
        self.key = self.prefix + f"{session.lease_id:x}"
        self.holder = holder or f"{session.lease_id:x}"
        self.held = False
        self._store = store
        self._session = session

    def _what(self, action: str) -> str:
        return f"semaphore {self.name!r}: {action}"

    async def acquire(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (the agreed interface)
        """Queue up and wait until among the first `limit`. On timeout (TimeoutError), cancellation or
        SessionLost the place in the queue is given up."""
        what = self._what("acquire")
        check_session(self._session, what)
        try:
            async with asyncio.timeout(timeout):
                put = Put(self.key, self.holder, lease=self._session.lease_id)
                with lease_must_exist(self._session, what):
                    await self._store.txn([Compare.create_revision(self.key, "=", 0)], [put])
                while True:
                    kvs, revision = await self._store.get_prefix(self.prefix)
                    order = sorted(kvs, key=lambda kv: kv.create_revision)
                    place = next((i for i, kv in enumerate(order) if kv.key == self.key), None)
                    if place is None:
                        raise SessionLost(f"{what}: our key {self.key!r} vanished (lease expired or revoked)")
                    if place < self.limit:
                        self.held = True
                        return
                    ahead = {kv.key for kv in order[:place]}
                    await unless_lost(self._session, self._wait_departure(ahead, revision + 1), what)
        except BaseException:
            with contextlib.suppress(StoreError):
                await self._store.delete(self.key)
            raise

    async def _wait_departure(self, ahead: set[str], start_revision: int) -> None:
        """Return when any of the keys ahead of ours is deleted after start_revision."""
        async with self._store.watch_prefix(self.prefix, start_revision=start_revision) as watch:
            async for ev in watch:
                if ev.type == "RESET" or (ev.type == "DELETE" and ev.kv is not None and ev.kv.key in ahead):
                    return

    async def release(self) -> None:
        self.held = False
        await self._store.delete(self.key)

    async def holders(self) -> list[str]:
        """The holder values of those holding it now (the first `limit` by create revision)."""
        kvs, _ = await self._store.get_prefix(self.prefix)
        order = sorted(kvs, key=lambda kv: kv.create_revision)
        return [kv.value.decode(errors="replace") for kv in order[: self.limit]]

    async def __aenter__(self) -> Semaphore:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
