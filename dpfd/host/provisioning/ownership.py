"""Who may work on a DPU: one store lock per DPU ("dpu.<namespace>.<name>"), held with the agent's etcd session.

Two dpfds that think they serve the same node (a copy started by mistake, or a restart while the old process's
lease lives on) must not both flash a DPU. The first to take the lock works on the DPU; the other waits (watching
the lock key, no polling) and reports nothing for it. The lock's create revision is the fencing token: it goes
into the DPU's progress and report, and every step that touches the DPU first checks the lock is still ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from dpfd.agent.reconciler import AgentLink
from dpfd.api.intents import ObjectRef
from dpfd.host.provisioning.deps import ProvisioningFailure
from dpfd.store import Lock, Session, SessionLost, StoreError, keys

log = logging.getLogger(__name__)

REASON_LOCK_LOST = "DPULockLost"


def lock_name(ref: ObjectRef) -> str:
    return f"dpu.{ref.namespace}.{ref.name}"


@dataclass(frozen=True)
class Claim:
    """The answer to "may this process work on the DPU now?"."""

    token: int = 0  # the fencing token when held
    holder: str = ""  # who holds it when not us ("" if unknown)
    problem: str = ""  # why it could not be asked (no etcd session, etcd error)

    @property
    def held(self) -> bool:
        return self.token > 0


class DpuLocks:
    def __init__(self, link: AgentLink) -> None:
        assert link.store is not None
        self.link = link
        self.store = link.store
        self._held: dict[ObjectRef, Lock] = {}
        self._sessions: dict[ObjectRef, Session] = {}
        self._waiters: dict[ObjectRef, asyncio.Task[None]] = {}

    async def claim(self, ref: ObjectRef) -> Claim:
        """Take (or confirm) the DPU's lock without waiting. When another holds it, a background waiter kicks the
        DPU once the lock is free and ours."""
        session = self.link.session()
        if session is None:
            return Claim(problem="no etcd session (dpfd is not registered)")
        lock = self._held.get(ref)
        if lock is not None and lock.token is not None and self._sessions.get(ref) is session:
            return Claim(token=lock.token)
        waiter = self._waiters.get(ref)
        if waiter is not None and not waiter.done():
            return Claim(holder=await self._holder(ref))
        lock = Lock(self.store, session, lock_name(ref), holder=self.link.holder)
        try:
            token = await lock.try_acquire()
        except (StoreError, SessionLost) as e:
            return Claim(problem=f"cannot take lock {lock_name(ref)}: {e}")
        if token is not None:
            self._held[ref], self._sessions[ref] = lock, session
            return Claim(token=token)
        self._waiters[ref] = asyncio.get_running_loop().create_task(self._wait(ref, lock, session))
        return Claim(holder=await self._holder(ref))

    async def _wait(self, ref: ObjectRef, lock: Lock, session: Session) -> None:
        try:
            await lock.acquire()
        except (StoreError, SessionLost) as e:
            log.info("waiting for lock %s ended: %s", lock_name(ref), e)
        else:
            self._held[ref], self._sessions[ref] = lock, session
        self.link.kick(ref, 0.0)

    async def _holder(self, ref: ObjectRef) -> str:
        try:
            kv = await self.store.get(keys.lock_key(lock_name(ref)))
        except StoreError:
            return ""
        return kv.value.decode(errors="replace") if kv is not None else ""

    async def check(self, ref: ObjectRef) -> None:
        """Raise ProvisioningFailure unless the DPU's lock is still ours (call before anything that touches it)."""
        lock = self._held.get(ref)
        if lock is None or lock.token is None:
            raise ProvisioningFailure(REASON_LOCK_LOST, f"this dpfd does not hold lock {lock_name(ref)}")
        try:
            ours = await lock.fenced_commit([])
        except StoreError as e:
            raise ProvisioningFailure(REASON_LOCK_LOST, f"cannot confirm lock {lock_name(ref)}: {e}") from None
        if not ours:
            self._held.pop(ref, None)
            raise ProvisioningFailure(REASON_LOCK_LOST, f"lock {lock_name(ref)} (token {lock.token}) passed to "
                                      f"another holder")  # fmt: skip

    def token(self, ref: ObjectRef) -> int:
        lock = self._held.get(ref)
        return lock.token or 0 if lock is not None else 0

    async def release(self, ref: ObjectRef) -> None:
        waiter = self._waiters.pop(ref, None)
        if waiter is not None:
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter
        lock = self._held.pop(ref, None)
        self._sessions.pop(ref, None)
        if lock is not None:
            with contextlib.suppress(StoreError):
                await lock.release()

    async def close(self) -> None:
        """Stop waiting. Held locks stay: they go with the session, which the agent revokes as it stops."""
        for ref in list(self._waiters):
            waiter = self._waiters.pop(ref)
            waiter.cancel()
            with contextlib.suppress(BaseException):
                await waiter
