"""Garbage-collector settings for dpf's long-running processes (controller, dpfd, emulators)."""

from __future__ import annotations

import gc

# Objects the collector may count before a young collection (CPython's default is 700). With the default, the
# objects of a few hundred requests in flight trigger a collection every few hundred allocations and get
# promoted as if long-lived, which in turn triggers full collections of all the caches (100 ms pauses measured
# with 1,000 DPUs). Cyclic garbage stays bounded by this count.
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)
