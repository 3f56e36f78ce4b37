"""Compact JSON as the API server sends it, and the serialisation of a stored object shared by everyone who
sends it: the write's own response and every watcher that sees the write's event."""

from __future__ import annotations

from typing import Any

from dpfd import fastjson
from dpfd.sim.kubeapi.negotiation import METADATA, Representation, partial_metadata, present
from dpfd.sim.kubeapi.resources import ResourceType
from dpfd.sim.kubeapi.store import WatchEvent


def dumps(obj: Any) -> bytes:
    """`json.dumps(obj, separators=(",", ":"))`, as bytes."""
    return fastjson.dumps(obj)


def event_object(ev: WatchEvent, rt: ResourceType, version: str, rep: Representation) -> bytes:
    """The JSON of the event's object as served at `version` in `rep` (object or metadata), encoded once."""
    key = (version, rep.form)
    body = ev.encoded.get(key)
    if body is None:
        shown = partial_metadata(ev.obj) if rep == METADATA else present(rt, version, ev.obj)
        body = ev.encoded[key] = dumps(shown)
    return body
