"""Leader election through the store: only the leader reconciles and writes.

Each attempt opens a session (a lease of `ttl` seconds), campaigns on the election "controller", and once
elected runs `lead(term)`. The term ends at once when the session is lost (its work is cancelled with no
flush), or cleanly when a stop is requested (the work may flush, then the candidacy is resigned so a standby
takes over immediately). Every etcd write of a term can carry `term.fence()`: a compare that holds only
while this candidacy key exists, so a deposed leader's late writes are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from dpfd.store import Compare, Election, Session, SessionLost, Store, StoreError

log = logging.getLogger(__name__)

ELECTION_NAME = "controller"


@dataclass
class Term:
    identity: str
    election_key: str
    key_revision: int
    graceful: bool = False  # set when the term ends because a stop was requested (the work may flush)
    _fence: list[Compare] = field(default_factory=list)

    def fence(self) -> list[Compare]:
        return list(self._fence)


LeadFunc = Callable[[Term], Coroutine[Any, Any, None]]


class LeaderElector:
    def __init__(self, store: Store, identity: str, *, ttl: float = 10.0, name: str = ELECTION_NAME) -> None:
        self.store = store
        self.identity = identity
        self.ttl = ttl
        self.name = name
        self.leading = asyncio.Event()  # set while this replica leads
        self.terms = 0

    @property
    def is_leader(self) -> bool:
        return self.leading.is_set()

    async def run(self, lead: LeadFunc, stop: asyncio.Event) -> None:
        """Campaign, lead, repeat, until `stop` is set."""
        attempt = 0
        while not stop.is_set():
            try:
                await self._one_session(lead, stop)
                attempt = 0
            except SessionLost as exc:
                log.info("election session lost; campaigning again", extra={"reason": str(exc)})
                attempt = 0
            except StoreError as exc:
                attempt += 1
                log.warning("election failed; retrying", extra={"error": str(exc), "attempt": attempt})
            if attempt:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), min(5.0, 0.2 * 2**attempt))

    async def _one_session(self, lead: LeadFunc, stop: asyncio.Event) -> None:
        session = await self.store.session(ttl=self.ttl)
        try:
            election = Election(self.store, session, self.name)
            if not await self._until_stopped_or_lost(election.campaign(self.identity), session, stop):
                return
            kv = await self.store.get(election.key)
            if kv is None or session.lost.is_set():
                return
            term = Term(
                self.identity,
                election.key,
                kv.create_revision,
                _fence=[Compare.create_revision(election.key, "=", kv.create_revision)],
            )
            await self._lead(term, lead, session, stop)
            if not session.lost.is_set():
                with contextlib.suppress(StoreError):
                    await election.resign()
        finally:
            await session.close()

    async def _until_stopped_or_lost(
        self, coro: Coroutine[Any, Any, None], session: Session, stop: asyncio.Event
    ) -> bool:
        """Run `coro`; True if it finished, False if the session was lost or a stop came first."""
        task = asyncio.create_task(coro)
        stopper = asyncio.create_task(stop.wait())
        lost = asyncio.create_task(session.lost.wait())
        try:
            await asyncio.wait({task, stopper, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            lost.cancel()
            finished = task.done()
            if not finished:
                task.cancel()  # the campaign withdraws its candidacy when cancelled
                with contextlib.suppress(asyncio.CancelledError, StoreError):
                    await task
        if not finished:
            return False
        task.result()  # a campaign that failed raises here
        return True

    async def _lead(self, term: Term, lead: LeadFunc, session: Session, stop: asyncio.Event) -> None:
        self.terms += 1
        self.leading.set()
        log.info("became leader", extra={"identity": self.identity, "term": self.terms})
        work = asyncio.create_task(lead(term), name="leader-work")
        stopper = asyncio.create_task(stop.wait())
        lost = asyncio.create_task(session.lost.wait())
        try:
            await asyncio.wait({work, stopper, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if session.lost.is_set():
                self.leading.clear()  # stop at once: no flush, no more writes
            elif stop.is_set():
                term.graceful = True
            stopper.cancel()
            lost.cancel()
            if not work.done():
                work.cancel()
            try:
                await work
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    self.leading.clear()
                    raise
            except Exception:
                log.exception("leader work failed; stepping down", extra={"identity": self.identity})
            self.leading.clear()
            reason = session.lost_reason or ("stop requested" if stop.is_set() else "work ended")
            log.info("leadership ended", extra={"identity": self.identity, "reason": reason})
