"""A shared informer: list, then watch from the list's resourceVersion, into an in-memory cache.

Like client-go's: re-lists on 410 Gone and on watch errors (with backoff), resumes the watch from the
last seen resourceVersion when the server ends it normally, re-delivers the whole cache to the handlers
every `resync_period`, and keeps optional indexes. Handlers are plain functions that should only
enqueue keys: they run inline on the informer's task.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
from collections.abc import Callable, Iterable
from typing import Literal

from controller.kube.client import ApiError, KubeClient
from controller.kube.objects import Obj, ObjKey, key_of, resource_version_of
from controller.kube.resources import ResourceType

log = logging.getLogger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED", "RESYNC"]
# (event, new object or the deleted one, previous object if any)
Handler = Callable[[EventType, Obj, Obj | None], None]
IndexFunc = Callable[[Obj], Iterable[str]]


class Informer:
    def __init__(
        self,
        client: KubeClient,
        resource: ResourceType,
        *,
        namespace: str | None = None,
        resync_period: float = 300.0,
        watch_timeout: int = 300,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.resync_period = resync_period
        self.watch_timeout = watch_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.synced = asyncio.Event()
        self.lists = 0  # how many times it listed (tests and metrics)
        self._cache: dict[ObjKey, Obj] = {}
        self._handlers: list[Handler] = []
        self._index_funcs: dict[str, IndexFunc] = {}
        self._indexes: dict[str, dict[str, set[ObjKey]]] = {}
        self._indexed: dict[str, dict[ObjKey, tuple[str, ...]]] = {}  # per index: each key's values in it
        self._rv = ""

    # -- cache ------------------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> Obj | None:
        return self._cache.get(ObjKey(namespace, name))

    def list(self) -> builtins.list[Obj]:
        return list(self._cache.values())

    def list_keys(self) -> builtins.list[ObjKey]:
        return list(self._cache)

    def __len__(self) -> int:
        return len(self._cache)

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def remove_handler(self, handler: Handler) -> None:
        """Stop calling `handler` (work of a leadership term that ended registers its handlers anew)."""
        self._handlers = [h for h in self._handlers if h != handler]

    def add_index(self, name: str, func: IndexFunc) -> None:
        """Index the cache by `func(obj)` values; `by_index(name, value)` returns the matching objects."""
        self._index_funcs[name] = func
        self._indexes[name] = {}
        self._indexed[name] = {}
        for key, obj in self._cache.items():
            self._index_one(name, key, obj)

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        keys = self._indexes[name].get(value, ())
        return [self._cache[k] for k in keys if k in self._cache]

    async def wait_synced(self) -> None:
        await self.synced.wait()

    # -- run --------------------------------------------------------------------------------------
    async def run(self) -> None:
        """List and watch until cancelled."""
        resync = asyncio.create_task(self._resync_loop(), name=f"resync-{self.resource.plural}")
        try:
            await self._list_and_watch_forever()
        finally:
            resync.cancel()

    async def _list_and_watch_forever(self) -> None:
        delay = self.backoff_initial
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch()
                delay = self.backoff_initial  # the server ended the watch normally: resume from _rv
            except ApiError as exc:
                need_list = True
                if exc.gone:
                    log.info("watch expired (410 Gone), re-listing", extra={"resource": self.resource.plural})
                    continue
                log.warning("list/watch failed", extra={"resource": self.resource.plural, "error": str(exc)})
            except (TimeoutError, OSError, ValueError) as exc:
                need_list = True
                log.warning("list/watch failed", extra={"resource": self.resource.plural, "error": repr(exc)})
            except Exception as exc:  # aiohttp's ClientError and anything unexpected: keep the informer alive
                need_list = True
                log.warning("list/watch failed", extra={"resource": self.resource.plural, "error": repr(exc)})
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(self.backoff_max, delay * 2)

    async def _relist(self) -> None:
        items, rv = await self.client.list(self.resource, self.namespace)
        self.lists += 1
        fresh = {key_of(o): o for o in items}
        old_cache = self._cache
        self._cache = {}
        for idx in self._indexes.values():
            idx.clear()
        for indexed in self._indexed.values():
            indexed.clear()
        for key, obj in fresh.items():
            self._store(key, obj)
        self._rv = rv
        # Tell handlers only what changed since the last view; the resync covers the rest.
        for key, obj in fresh.items():
            old = old_cache.get(key)
            if old is None:
                self._dispatch("ADDED", obj, None)
            elif resource_version_of(old) != resource_version_of(obj):
                self._dispatch("MODIFIED", obj, old)
        for key, old in old_cache.items():
            if key not in fresh:
                self._dispatch("DELETED", old, None)
        self.synced.set()

    async def _watch(self) -> None:
        async for ev in self.client.watch(
            self.resource, self._rv, namespace=self.namespace, timeout_seconds=self.watch_timeout
        ):
            if ev.type == "ERROR":
                code = int(ev.object.get("code") or 0)
                raise ApiError(
                    code,
                    str(ev.object.get("reason", "")),
                    str(ev.object.get("message", "")),
                    f"watch {self.resource.plural}",
                )
            rv = resource_version_of(ev.object)
            if rv:
                self._rv = rv
            if ev.type == "BOOKMARK":
                continue
            key = key_of(ev.object)
            old = self._cache.get(key)
            if ev.type == "DELETED":
                self._remove(key)
                self._dispatch("DELETED", ev.object, old)
            elif ev.type in ("ADDED", "MODIFIED"):
                self._store(key, ev.object)
                self._dispatch("MODIFIED" if old is not None else "ADDED", ev.object, old)

    async def _resync_loop(self) -> None:
        if self.resync_period <= 0:
            return
        while True:
            await asyncio.sleep(self.resync_period)
            if self.synced.is_set():
                for obj in list(self._cache.values()):
                    self._dispatch("RESYNC", obj, obj)

    # -- internals --------------------------------------------------------------------------------
    def _store(self, key: ObjKey, obj: Obj) -> None:
        self._cache[key] = obj
        for name in self._index_funcs:
            self._index_one(name, key, obj)

    def _remove(self, key: ObjKey) -> None:
        if self._cache.pop(key, None) is not None:
            for name in self._index_funcs:
                self._index_one(name, key, None)

    def _index_one(self, name: str, key: ObjKey, obj: Obj | None) -> None:
        """Move `key` to the values `obj` has in index `name` (none when obj is None); most updates keep them."""
        indexed = self._indexed[name]
        before = indexed.get(key, ())
        after = tuple(self._index_funcs[name](obj)) if obj is not None else ()
        if after == before:
            return
        idx = self._indexes[name]
        for value in before:
            keys = idx.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del idx[value]
        for value in after:
            idx.setdefault(value, set()).add(key)
        if after:
            indexed[key] = after
        else:
            indexed.pop(key, None)

    def _dispatch(self, event: EventType, obj: Obj, old: Obj | None) -> None:
        for handler in self._handlers:
            try:
                handler(event, obj, old)
            except Exception:
                log.exception("informer handler failed", extra={"resource": self.resource.plural})
