"""Lock: mutual exclusion on one key, bound to a session lease, with its create revision as fencing token.

Whoever holds the key holds the lock. A holder that stalls past its lease TTL loses the key without
knowing it, so writes made under the lock carry `fence()`: they fail once the key has a new owner.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from dpfd.store.client import Store
from dpfd.store.coordination import (
    check_session,
    delete_if_ours,
    lease_must_exist,
    unless_lost,
    wait_deleted,
)
from dpfd.store.errors import StoreError
from dpfd.store.keys import lock_key
from dpfd.store.lease import Session
from dpfd.store.types import MAX_TXN_OPS, Compare, Delete, Op, Put


class Lock:
    def __init__(self, store: Store, session: Session, name: str, *, holder: str = "") -> None:
        self.key = lock_key(name)
        self.name = name
        self.holder = holder or f"lease-{session.lease_id:x}"
        self.token: int | None = None
        self._store = store
        self._session = session

    def _what(self, action: str) -> str:
        return f"lock {self.name!r}: {action}"

    async def _attempt(self) -> tuple[int | None, int]:
        """One try: (token, 0) if we hold it now, (None, revision to watch from) if someone else does."""
        while True:
            check_session(self._session, self._what("acquire"))
            lease = self._session.lease_id
            put = Put(self.key, self.holder, lease=lease)
            with lease_must_exist(self._session, self._what("acquire")):
                res = await self._store.txn([Compare.create_revision(self.key, "=", 0)], [put])
            if res.succeeded:
                return res.revision, 0
            kv = await self._store.get(self.key)
            if kv is None:
                continue  # released between our txn and get: try again
            if kv.lease == lease:
                return kv.create_revision, 0  # ours already (an earlier attempt got through)
            return None, kv.mod_revision + 1

    async def try_acquire(self) -> int | None:
        """The fencing token if the lock was free (or already ours), else None at once."""
        token, _ = await self._attempt()
        self.token = token
        return token

    async def acquire(self, timeout: float | None = None) -> int:  # noqa: ASYNC109 (the agreed interface)
        """Wait (watching the key, no polling) until the lock is ours; return the fencing token.
        Raises TimeoutError after timeout, SessionLost if the session goes first."""
        self.token = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    token, wait_from = await self._attempt()
                    if token is not None:
                        self.token = token
                        return token
                    await unless_lost(
                        self._session, wait_deleted(self._store, self.key, wait_from), self._what("acquire")
                    )
        except BaseException:
            if self.token is None:  # our create may have landed unseen: do not leave it blocking others
                await delete_if_ours(self._store, self.key, self._session.lease_id)
            raise

    async def release(self) -> None:
        """Delete the key if it is still ours (by token); a lock that passed to another is left alone."""
        if self.token is None:
            return
        token, self.token = self.token, None
        await self._store.txn([Compare.create_revision(self.key, "=", token)], [Delete(self.key)])

    def fence(self) -> Compare:
        """A compare that holds only while this holder still has the lock: add it to every guarded txn."""
        if self.token is None:
            raise StoreError(self._what("fence: the lock is not held, so there is no fencing token"))
        return Compare.create_revision(self.key, "=", self.token)

    async def fenced_commit(self, ops: Sequence[Op]) -> bool:
        """Apply ops in one txn if the lock is still ours; False (nothing applied) if it is not."""
        if len(ops) > MAX_TXN_OPS - 1:
            raise StoreError(self._what(f"fenced_commit of {len(ops)} ops; at most {MAX_TXN_OPS - 1} fit one txn"))
        res = await self._store.txn([self.fence()], ops)
        return res.succeeded

    async def __aenter__(self) -> Lock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
