"""A live view of one etcd prefix (list + watch through the store), with change handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from dpfd.store import KeyValue, Store, StoreError

log = logging.getLogger(__name__)

# (key, the new KeyValue or None when the key was deleted)
ChangeHandler = Callable[[str, KeyValue | None], None]


class PrefixWatch:
    """Keeps `items` equal to the keys under `prefix`; calls handlers for every key that changed."""

    def __init__(self, store: Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.items: dict[str, KeyValue] = {}
        self.synced = asyncio.Event()
        self.revision = 0
        self._handlers: list[ChangeHandler] = []

    def add_handler(self, handler: ChangeHandler) -> None:
        self._handlers.append(handler)

    async def run(self) -> None:
        """Follow the prefix until cancelled. The store's watch resumes across failovers by itself; if it
        gives up (a non-retryable error), start a new one, which begins with a RESET."""
        delay = 0.2
        while True:
            try:
                await self._follow()
                return
            except StoreError as exc:
                log.warning("etcd watch failed, restarting", extra={"key": self.prefix, "error": str(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _follow(self) -> None:
        async with self.store.watch_prefix(self.prefix) as watch:
            async for ev in watch:
                self.revision = max(self.revision, ev.revision)
                if ev.type == "RESET":
                    self._replace(ev.snapshot)
                    self.synced.set()
                elif ev.kv is not None and ev.type == "PUT":
                    self.items[ev.kv.key] = ev.kv
                    self._notify(ev.kv.key, ev.kv)
                elif ev.kv is not None and ev.type == "DELETE" and self.items.pop(ev.kv.key, None) is not None:
                    self._notify(ev.kv.key, None)

    def _replace(self, snapshot: tuple[KeyValue, ...]) -> None:
        fresh = {kv.key: kv for kv in snapshot}
        old = self.items
        self.items = fresh
        for key, kv in fresh.items():
            prev = old.get(key)
            if prev is None or prev.mod_revision != kv.mod_revision:
                self._notify(key, kv)
        for key in old.keys() - fresh.keys():
            self._notify(key, None)

    def _notify(self, key: str, kv: KeyValue | None) -> None:
        for handler in self._handlers:
            try:
                handler(key, kv)
            except Exception:
                log.exception("etcd watch handler failed", extra={"key": key})
