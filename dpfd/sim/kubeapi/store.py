"""In-memory object storage with one global resourceVersion, a retained event window, and watcher fan-out.

Objects are never mutated once stored: every write stores a new dict, so events can keep references to them.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from dpfd.sim.kubeapi.selectors import FieldSelector, LabelSelector

Obj = dict[str, Any]
ResourceKey = tuple[str, str]  # (group, plural)
ObjKey = tuple[ResourceKey, str, str]  # (resource, namespace or "", name)


@dataclass(eq=False)
class WatchEvent:
    rv: int
    type: str  # ADDED | MODIFIED | DELETED
    rkey: ResourceKey
    namespace: str
    obj: Obj
    old: Obj | None = None  # the previous state of a MODIFIED object
    encoded: dict[Any, bytes] = field(default_factory=dict)  # serialisations shared by watchers


@dataclass(eq=False)
class Watcher:
    """One watch request; events it should see are queued as (type, event), None ends it."""

    rkey: ResourceKey
    namespace: str | None
    labels: LabelSelector | None = None
    fields: FieldSelector | None = None
    queue: asyncio.Queue[tuple[str, WatchEvent] | None] = field(default_factory=asyncio.Queue)

    def _matches(self, obj: Obj) -> bool:
        return (self.labels is None or self.labels.matches(obj)) and (self.fields is None or self.fields.matches(obj))

    def visible_type(self, ev: WatchEvent) -> str | None:
        """The event type this watcher sees; an update moving an object in or out of its selectors is
        an ADDED or DELETED, as the real API server reports it."""
        if self.namespace is not None and ev.namespace != self.namespace:
            return None
        if self.labels is None and self.fields is None:
            return ev.type
        now = self._matches(ev.obj)
        if ev.type != "MODIFIED" or ev.old is None:
            return ev.type if now else None
        before = self._matches(ev.old)
        if now and before:
            return "MODIFIED"
        if now:
            return "ADDED"
        return "DELETED" if before else None

    def offer(self, ev: WatchEvent) -> None:
        t = self.visible_type(ev)
        if t is not None:
            self.queue.put_nowait((t, ev))


class ResourceVersionTooOld(Exception):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")


def _owner_uids(obj: Obj) -> set[str]:
    return {str(r["uid"]) for r in obj.get("metadata", {}).get("ownerReferences") or [] if r.get("uid")}


class Store:
    def __init__(self, event_window: int) -> None:
        self.rv = 0
        self.compacted_rv = 0  # watches must start at or after this revision
        self._data: dict[ResourceKey, dict[str, dict[str, Obj]]] = {}
        self._uids: dict[str, ObjKey] = {}
        self._dependents: dict[str, set[ObjKey]] = {}
        self._namespace_counts: Counter[str] = Counter()
        self._events: deque[WatchEvent] = deque()
        self._event_window = max(1, event_window)
        self._watchers: dict[ResourceKey, set[Watcher]] = {}
        self.writes = 0

    # reads

    def get(self, rkey: ResourceKey, namespace: str, name: str) -> Obj | None:
        return self._data.get(rkey, {}).get(namespace, {}).get(name)

    def in_scope(self, rkey: ResourceKey, namespace: str | None) -> list[Obj]:
        """Objects in key order (namespace, then name), as etcd returns them."""
        by_ns = self._data.get(rkey, {})
        if namespace is not None:
            bucket = by_ns.get(namespace, {})
            return [bucket[n] for n in sorted(bucket)]
        return [by_ns[ns][n] for ns in sorted(by_ns) for n in sorted(by_ns[ns])]

    def all_objects(self) -> list[tuple[ResourceKey, Obj]]:
        return [(rkey, obj) for rkey, by_ns in self._data.items() for b in by_ns.values() for obj in b.values()]

    def namespace_count(self, namespace: str) -> int:
        return self._namespace_counts[namespace]

    def keys_in_namespace(self, namespace: str) -> list[ObjKey]:
        return [(rkey, namespace, name) for rkey, by_ns in self._data.items() for name in by_ns.get(namespace, {})]

    def by_uid(self, uid: str) -> ObjKey | None:
        return self._uids.get(uid)

    def dependents(self, owner_uid: str) -> list[ObjKey]:
        return sorted(self._dependents.get(owner_uid, ()))

    def event_of(self, obj: Obj) -> WatchEvent | None:
        """The event of the latest write if it stored `obj` (this very dict), so its serialisations can be
        shared with the write's response."""
        ev = self._events[-1] if self._events else None
        return ev if ev is not None and ev.obj is obj else None

    # writes (the object's metadata must be a dict the store may own)

    def put(self, rkey: ResourceKey, obj: Obj, event_type: str, old: Obj | None = None) -> Obj:
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        bucket = self._data.setdefault(rkey, {}).setdefault(ns, {})
        if name not in bucket and ns:
            self._namespace_counts[ns] += 1
        bucket[name] = obj
        key = (rkey, ns, name)
        self._uids[meta["uid"]] = key
        self._reindex_owners(key, old, obj)
        self._emit(WatchEvent(self.rv, event_type, rkey, ns, obj, old))
        return obj

    def remove(self, rkey: ResourceKey, obj: Obj) -> Obj:
        """Delete `obj`; the DELETED event carries it at the deletion's resourceVersion."""
        meta = obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        bucket = self._data.get(rkey, {}).get(ns, {})
        bucket.pop(name, None)
        if ns:
            self._namespace_counts[ns] -= 1
        self._uids.pop(meta.get("uid", ""), None)
        self._reindex_owners((rkey, ns, name), obj, None)
        self.rv += 1
        gone = {**obj, "metadata": {**meta, "resourceVersion": str(self.rv)}}
        self._emit(WatchEvent(self.rv, "DELETED", rkey, ns, gone))
        return gone

    def restore(self, rkey: ResourceKey, obj: Obj) -> None:
        """Load a snapshotted object as it was (no event, no new resourceVersion)."""
        meta = obj["metadata"]
        ns = meta.get("namespace", "")
        bucket = self._data.setdefault(rkey, {}).setdefault(ns, {})
        if meta["name"] not in bucket and ns:
            self._namespace_counts[ns] += 1
        bucket[meta["name"]] = obj
        self._uids[meta["uid"]] = (rkey, ns, meta["name"])
        self._reindex_owners((rkey, ns, meta["name"]), None, obj)

    def _reindex_owners(self, key: ObjKey, old: Obj | None, new: Obj | None) -> None:
        before = _owner_uids(old) if old else set()
        after = _owner_uids(new) if new else set()
        for uid in before - after:
            deps = self._dependents.get(uid)
            if deps is not None:
                deps.discard(key)
                if not deps:
                    del self._dependents[uid]
        for uid in after - before:
            self._dependents.setdefault(uid, set()).add(key)

    def _emit(self, ev: WatchEvent) -> None:
        self.writes += 1
        if len(self._events) >= self._event_window:
            self.compacted_rv = self._events.popleft().rv
        self._events.append(ev)
        for w in self._watchers.get(ev.rkey, ()):
            w.offer(ev)

    # watches

    def subscribe(self, watcher: Watcher, since: int | None) -> list[tuple[str, WatchEvent]]:
        """Register `watcher`; return the retained events after `since` it should see first.

        Raises ResourceVersionTooOld when events after `since` were already dropped.
        """
        replay: list[tuple[str, WatchEvent]] = []
        if since is not None:
            if since < self.compacted_rv:
                raise ResourceVersionTooOld(since, self.compacted_rv + 1)
            for ev in reversed(self._events):
                if ev.rv <= since:
                    break
                if ev.rkey == watcher.rkey and (t := watcher.visible_type(ev)) is not None:
                    replay.append((t, ev))
            replay.reverse()
        self._watchers.setdefault(watcher.rkey, set()).add(watcher)
        return replay

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.rkey, set()).discard(watcher)

    def end_watches(self) -> None:
        for watchers in self._watchers.values():
            for w in watchers:
                w.queue.put_nowait(None)

    def compact(self) -> None:
        """Forget the event window: watches from any earlier resourceVersion get 410 Gone."""
        self._events.clear()
        self.compacted_rv = self.rv

    def watcher_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())
