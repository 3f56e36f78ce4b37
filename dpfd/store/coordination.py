"""Shared by Lock, Semaphore and Election: waiting without polling (for a key to go away, or for anything
while a session lives) and cleaning up a key that a cancelled request may have written."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Iterator
from typing import TYPE_CHECKING, TypeVar

from dpfd.store.errors import SessionLost, StoreError
from dpfd.store.lease import Session
from dpfd.store.types import Compare, Delete

if TYPE_CHECKING:
    from dpfd.store.client import Store

T = TypeVar("T")


def check_session(session: Session, what: str) -> None:
    if session.lost.is_set():
        raise SessionLost(f"{what}: session {session.lease_id:x} is lost ({session.lost_reason})")


@contextlib.contextmanager
def lease_must_exist(session: Session, what: str) -> Iterator[None]:
    """A write bound to the session's lease that etcd refuses for want of the lease means SessionLost."""
    try:
        yield
    except StoreError as err:
        if "requested lease not found" in str(err):
            raise SessionLost(f"{what}: session {session.lease_id:x} lease is gone") from err
        raise


async def unless_lost(session: Session, aw: Awaitable[T], what: str) -> T:
    """Await aw, but give up with SessionLost as soon as the session is lost."""
    check_session(session, what)
    work = asyncio.ensure_future(aw)
    lost = asyncio.ensure_future(session.lost.wait())
    try:
        await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            return work.result()
        raise SessionLost(f"{what}: session {session.lease_id:x} lost while waiting ({session.lost_reason})")
    finally:
        for t in (work, lost):
            t.cancel()
        for t in (work, lost):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


async def wait_deleted(store: Store, key: str, start_revision: int) -> None:
    """Return once key is deleted at or after start_revision. The caller saw the key exist at
    start_revision - 1, so its deletion is always in that range (or compacted: then the RESET shows it)."""
    async with store.watch_key(key, start_revision=start_revision) as watch:
        async for ev in watch:
            if ev.type == "DELETE" or (ev.type == "RESET" and not ev.snapshot):
                return


async def delete_if_ours(store: Store, key: str, lease: int) -> None:
    """Delete key if it is bound to lease: undo a create whose answer we never saw (we were cancelled or
    timed out while it was in flight). Best effort; the lease's expiry is the backstop."""
    with contextlib.suppress(StoreError):
        kv = await store.get(key)
        if kv is not None and kv.lease == lease:
            await store.txn([Compare.create_revision(key, "=", kv.create_revision)], [Delete(key)])
