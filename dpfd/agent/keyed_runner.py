"""Run async work per key: never twice at once for one key, coalescing changes that arrive meanwhile.

This is the work queue behind the reconcilers: a change during a run queues exactly one more run
(level-triggered work reads the latest state when it starts, so more would be redundant).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")

log = logging.getLogger(__name__)


class _Slot:
    """One run's hold on the concurrency semaphore, which the work may hand back while it only waits."""

    def __init__(self, sem: asyncio.Semaphore) -> None:
        self.sem = sem
        self.held = False
        self.task = asyncio.current_task()  # tasks the work starts inherit the context, not the slot

    async def acquire(self) -> None:
        await self.sem.acquire()
        self.held = True

    def release(self) -> None:
        if self.held:
            self.held = False
            self.sem.release()


_slot: contextvars.ContextVar[_Slot | None] = contextvars.ContextVar("keyed_runner_slot", default=None)


async def outside_slot(waiting: Awaitable[T]) -> T:
    """Await `waiting` without holding the run's concurrency slot (taken back afterwards).

    For work that has handed its job to something shared (a bundle applier) and only waits for it: other keys run
    meanwhile, so their jobs can join the same shared step. Outside a KeyedRunner run it just awaits.
    """
    slot = _slot.get()
    if slot is None or not slot.held or slot.task is not asyncio.current_task():
        return await waiting
    slot.release()
    try:
        return await waiting
    finally:
        await slot.acquire()


class KeyedRunner(Generic[K]):
    def __init__(self, work: Callable[[K], Awaitable[None]], concurrency: int | asyncio.Semaphore = 4) -> None:
        self._work = work
        # A shared semaphore lets many agents in one process bound their total concurrency together.
        self._sem = concurrency if isinstance(concurrency, asyncio.Semaphore) else asyncio.Semaphore(concurrency)
        self._running: dict[K, asyncio.Task[None]] = {}
        self._dirty: set[K] = set()
        self._timers: dict[K, asyncio.TimerHandle] = {}
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def busy(self) -> int:
        """Keys that are running or queued to run."""
        return len(self._running)

    def is_running(self, key: K) -> bool:
        return key in self._running

    def kick(self, key: K) -> None:
        """Run `work(key)` soon: now if idle, once more after the current run otherwise."""
        if self._stopping:
            return
        if key in self._running:
            self._dirty.add(key)
            return
        self._idle.clear()
        # No task name: formatting the key (a pydantic model) for it cost more than the rest of a kick.
        self._running[key] = asyncio.get_running_loop().create_task(self._run(key))

    def kick_after(self, key: K, delay: float) -> None:
        """Kick `key` after `delay` seconds, unless a pending kick_after for it fires no later."""
        if self._stopping:
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending.when() <= when:
                return
            pending.cancel()
        self._timers[key] = loop.call_at(when, self._fire_timer, key)

    def cancel_delayed(self, key: K) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def has_delayed(self, key: K) -> bool:
        return key in self._timers

    def _fire_timer(self, key: K) -> None:
        self._timers.pop(key, None)
        self.kick(key)

    async def _run(self, key: K) -> None:
        try:
            while True:
                self._dirty.discard(key)
                slot = _Slot(self._sem)
                await slot.acquire()
                token = _slot.set(slot)
                try:
                    # Yield once holding the slot: work that never awaits (a quick reconcile) would otherwise run
                    # a whole burst of kicks in one loop iteration, holding off keepalives, watch events and
                    # signals (SIGTERM must stop a burst midway) until all of it is done.
                    await asyncio.sleep(0)
                    if self._stopping:
                        return  # queued but not started: stopping takes no new work
                    try:
                        await self._work(key)
                    except Exception:
                        # The work handles its own failures; this keeps a bug from ending the key's loop.
                        log.exception("event=work_crashed key=%s", key)
                finally:
                    _slot.reset(token)
                    slot.release()
                if key not in self._dirty or self._stopping:
                    return
        finally:
            self._dirty.discard(key)
            self._running.pop(key, None)
            if not self._running:
                self._idle.set()

    async def wait_idle(self) -> None:
        """Until nothing runs or is queued (delayed kicks do not count)."""
        await self._idle.wait()

    async def stop(self, grace: float) -> bool:
        """Take no new work, let running work finish for up to `grace` seconds, then cancel the rest.

        Returns True if everything finished in time.
        """
        self._stopping = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = list(self._running.values())
        if not tasks:
            return True
        _, pending = await asyncio.wait(tasks, timeout=grace)
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        return not pending
