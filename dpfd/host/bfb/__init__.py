"""BFB images on the host: a content-addressed download cache shared by every DPU of the host.

cache = BfbCache(state_dir / "bfb")
image = await cache.fetch(bfb.spec.url, on_progress=report)   # BfbFetchError(reason, message) on failure
... install image.path ...
await cache.gc(keep={urls the intents still name})
"""

from dpfd.host.bfb.cache import BfbCache, CachedBfb, GcResult, validate_url
from dpfd.host.bfb.errors import BfbFetchError, FetchReason
from dpfd.host.bfb.progress import Progress, ProgressCallback, ProgressPhase

__all__ = [
    "BfbCache",
    "BfbFetchError",
    "CachedBfb",
    "FetchReason",
    "GcResult",
    "Progress",
    "ProgressCallback",
    "ProgressPhase",
    "validate_url",
]
