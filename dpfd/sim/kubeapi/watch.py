"""Streaming a watch: newline-delimited `{"type": ..., "object": ...}` events, bookmarks, 410 when too old."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from dpfd.sim.kubeapi import errors, tables
from dpfd.sim.kubeapi.encoding import dumps as _dumps
from dpfd.sim.kubeapi.encoding import event_object
from dpfd.sim.kubeapi.negotiation import TABLE, Representation
from dpfd.sim.kubeapi.resources import ResourceType
from dpfd.sim.kubeapi.store import ResourceVersionTooOld, Store, Watcher, WatchEvent

Obj = dict[str, Any]


@dataclass
class WatchRequest:
    rt: ResourceType
    version: str
    watcher: Watcher
    since: int | None  # None: start with the current state as ADDED events
    send_initial_events: bool
    bookmarks: bool
    timeout: float
    representation: Representation
    include_object: str


def server_timeout(param: str | None) -> float:
    """timeoutSeconds, or the real server's default: a random 30 to 60 minutes."""
    if param:
        try:
            return max(0.0, float(param))
        except ValueError as e:
            raise errors.bad_request(f"invalid timeoutSeconds {param!r}") from e
    return random.uniform(1800, 3600)


class WatchStream:
    def __init__(self, store: Store, req: WatchRequest, bookmark_interval: float) -> None:
        self.store = store
        self.req = req
        self.bookmark_interval = bookmark_interval
        self._columns = tables.columns_for(req.rt, req.version) if req.representation == TABLE else []
        self._sent_headers = False

    def _encode(self, type_: str, ev: WatchEvent) -> bytes:
        req = self.req
        if req.representation == TABLE:
            obj = tables.table(
                self._columns,
                [ev.obj],
                str(ev.rv),
                include_object=req.include_object,
                headers=not self._sent_headers,
            )
            self._sent_headers = True
            return _dumps({"type": type_, "object": obj}) + b"\n"
        body = event_object(ev, req.rt, req.version, req.representation)
        return b'{"type":"' + type_.encode() + b'","object":' + body + b"}\n"

    def _bookmark(self, *, initial_events_end: bool = False) -> bytes:
        meta: Obj = {"resourceVersion": str(self.store.rv), "creationTimestamp": None}
        if initial_events_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {
            "kind": self.req.rt.kind,
            "apiVersion": self.req.rt.api_version(self.req.version),
            "metadata": meta,
        }
        return _dumps({"type": "BOOKMARK", "object": obj}) + b"\n"

    async def serve(self, request: web.BaseRequest) -> web.StreamResponse:
        req, store = self.req, self.store
        # Subscribing and snapshotting the current state happen without an await in between, so no event
        # falls between the initial state and the stream.
        try:
            replay = store.subscribe(req.watcher, req.since)
        except ResourceVersionTooOld as e:
            return await self._error_only(request, errors.expired(str(e)).status())
        try:
            first: list[bytes] = []
            if req.since is None or req.send_initial_events:
                current = self._initial_objects()
                first.extend(
                    self._encode("ADDED", WatchEvent(int(o["metadata"]["resourceVersion"]), "ADDED", req.rt.key, "", o))
                    for o in current
                )
            first.extend(self._encode(t, ev) for t, ev in replay)
            if req.send_initial_events and req.bookmarks:
                first.append(self._bookmark(initial_events_end=True))
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            try:
                if first:
                    await resp.write(b"".join(first))
                await self._pump(resp)
                await resp.write_eof()
            except ConnectionResetError:
                pass  # the client went away: nothing more to say to it
            return resp
        finally:
            store.unsubscribe(req.watcher)

    def _initial_objects(self) -> list[Obj]:
        w = self.req.watcher
        objs = self.store.in_scope(w.rkey, w.namespace)
        return [
            o for o in objs if (w.labels is None or w.labels.matches(o)) and (w.fields is None or w.fields.matches(o))
        ]

    async def _pump(self, resp: web.StreamResponse) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.req.timeout
        next_bookmark = loop.time() + self.bookmark_interval
        queue = self.req.watcher.queue
        while True:
            now = loop.time()
            if now >= deadline:
                if self.req.bookmarks and queue.empty():
                    await resp.write(self._bookmark())
                return
            wait = deadline - now
            if self.req.bookmarks:
                if now >= next_bookmark and queue.empty():
                    await resp.write(self._bookmark())
                    next_bookmark = now + self.bookmark_interval
                    continue
                wait = min(wait, max(0.0, next_bookmark - now))
            try:
                async with asyncio.timeout(wait):  # unlike wait_for, no task per wait
                    item = await queue.get()
            except TimeoutError:
                continue
            chunks: list[bytes] = []
            ended = item is None
            while item is not None:
                chunks.append(self._encode(*item))
                if queue.empty():
                    break
                item = queue.get_nowait()
                ended = item is None
            if chunks:
                await resp.write(b"".join(chunks))
            if ended:
                return

    async def _error_only(self, request: web.BaseRequest, status: Obj) -> web.StreamResponse:
        """The real server answers a too-old resourceVersion with 200 and a single ERROR event."""
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(_dumps({"type": "ERROR", "object": status}) + b"\n")
        await resp.write_eof()
        return resp
