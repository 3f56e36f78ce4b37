"""One shared ObjectRef per object: the publisher, the work queues and the report cache key their dicts and
sets by refs, and a lookup that finds the very same instance skips pydantic's (slow) `__eq__`."""

from __future__ import annotations

import functools

from dpfd.api.intents import ObjectRef


@functools.lru_cache(maxsize=65_536)  # bounded: objects come and go over a controller's life
def object_ref(kind: str, namespace: str, name: str) -> ObjectRef:
    return ObjectRef(kind=kind, namespace=namespace, name=name)


def shared(ref: ObjectRef) -> ObjectRef:
    """The shared instance equal to `ref`."""
    return object_ref(ref.kind, ref.namespace, ref.name)


def same_ref(a: ObjectRef, b: ObjectRef) -> bool:
    """`a == b`, without pydantic's generic comparison."""
    return a is b or (a.name == b.name and a.namespace == b.namespace and a.kind == b.kind)
