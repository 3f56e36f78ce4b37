"""Election with the semantics of etcd's Go concurrency.Election.

Candidates put <prefix>/<lease hex> = value on their session lease; the leader is the key with the lowest
create revision. Each candidate waits only for the deletion of the key just below its own, so a leader's
departure wakes one candidate, not all. A leader whose session is lost is no longer leader at once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from dpfd.store.client import Store
from dpfd.store.coordination import (
    check_session,
    delete_if_ours,
    lease_must_exist,
    unless_lost,
    wait_deleted,
)
from dpfd.store.errors import SessionLost, StoreError
from dpfd.store.keys import election_prefix
from dpfd.store.lease import Session
from dpfd.store.types import Compare, Delete, KeyValue, Put


def _leader_of(kvs: list[KeyValue] | dict[str, KeyValue]) -> KeyValue | None:
    values = list(kvs.values()) if isinstance(kvs, dict) else kvs
    return min(values, key=lambda kv: kv.create_revision, default=None)


class Election:
    def __init__(self, store: Store, session: Session, name: str) -> None:
        self.name = name
        self.prefix = election_prefix(name)
        self.key = self.prefix + f"{session.lease_id:x}"
        self._store = store
        self._session = session
        self._revision = 0  # create revision of our candidacy key; 0 when not campaigning
        self._leader = False
        session.add_lost_callback(self._on_lost)

    def _what(self, action: str) -> str:
        return f"election {self.name!r}: {action}"

    def _on_lost(self) -> None:
        self._leader = False

    @property
    def is_leader(self) -> bool:
        return self._leader and not self._session.lost.is_set()

    async def campaign(self, value: str) -> None:
        """Stand with value and return once leader. Raises SessionLost if the session goes first; on any
        failure or cancellation the candidacy is withdrawn."""
        what = self._what("campaign")
        check_session(self._session, what)
        lease = self._session.lease_id
        self._revision = 0
        try:
            while True:
                put = Put(self.key, value, lease=lease)
                with lease_must_exist(self._session, what):
                    res = await self._store.txn([Compare.create_revision(self.key, "=", 0)], [put])
                if res.succeeded:
                    self._revision = res.revision
                    break
                kv = await self._store.get(self.key)
                if kv is not None:  # already standing on this session: keep the place, update the value
                    self._revision = kv.create_revision
                    if kv.value != value.encode():
                        with lease_must_exist(self._session, what):
                            await self._store.put(self.key, value, lease=lease)
                    break
            await unless_lost(self._session, self._wait_turn(), what)
        except BaseException:
            # Withdraw, including a candidacy whose create landed without our seeing the answer.
            self._revision = 0
            await delete_if_ours(self._store, self.key, lease)
            raise
        self._leader = True

    async def _wait_turn(self) -> None:
        while True:
            kvs, revision = await self._store.get_prefix(self.prefix)
            if not any(kv.key == self.key for kv in kvs):
                raise SessionLost(self._what(f"our key {self.key!r} vanished (lease expired or revoked)"))
            below = [kv for kv in kvs if kv.create_revision < self._revision]
            if not below:
                return
            just_below = max(below, key=lambda kv: kv.create_revision)
            await wait_deleted(self._store, just_below.key, revision + 1)

    async def proclaim(self, value: str) -> None:
        """Change the leader's value without giving up leadership."""
        if not self.is_leader:
            raise StoreError(self._what("proclaim: not the leader"))
        put = Put(self.key, value, lease=self._session.lease_id)
        res = await self._store.txn([Compare.create_revision(self.key, "=", self._revision)], [put])
        if not res.succeeded:
            self._leader = False
            raise SessionLost(self._what("proclaim: our key is gone; leadership lost"))

    async def resign(self) -> None:
        """Step down (or withdraw the candidacy); the next candidate takes over."""
        self._leader = False
        await self._withdraw()

    async def _withdraw(self) -> None:
        if self._revision:
            revision, self._revision = self._revision, 0
            await self._store.txn([Compare.create_revision(self.key, "=", revision)], [Delete(self.key)])

    async def leader(self) -> str | None:
        """The current leader's value, None if there are no candidates."""
        kvs, _ = await self._store.get_prefix(self.prefix)
        kv = _leader_of(kvs)
        return kv.value.decode(errors="replace") if kv is not None else None

    async def observe(self) -> AsyncIterator[str | None]:
        """The leader's value now, then each time it changes (None while nobody stands)."""
        state: dict[str, KeyValue] = {}
        last: str | None = None
        first = True
        async with self._store.watch_prefix(self.prefix) as watch:
            async for ev in watch:
                if ev.type == "RESET":
                    state = {kv.key: kv for kv in ev.snapshot}
                elif ev.kv is not None and ev.type == "PUT":
                    state[ev.kv.key] = ev.kv
                elif ev.kv is not None:
                    state.pop(ev.kv.key, None)
                kv = _leader_of(state)
                current = kv.value.decode(errors="replace") if kv is not None else None
                if first or current != last:
                    first, last = False, current
                    yield current
