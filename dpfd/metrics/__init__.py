"""Prometheus metrics for dpfd and the controller: instruments, a registry, the text exposition, and an HTTP server
(server.py, imported on its own: it needs aiohttp, which the store and the CNI plugin need not load).

See registry.py for why this is ours rather than prometheus_client, instruments.py for what dpf's code updates as
it works, collectors.py for what is read at scrape time, and docs/metrics.md for every metric.
"""

from dpfd.metrics.exposition import CONTENT_TYPE, render
from dpfd.metrics.registry import (
    REGISTRY,
    CallbackMetric,
    CollectorGroup,
    Counter,
    Family,
    Gauge,
    Histogram,
    Registry,
    Sample,
)

__all__ = [
    "CONTENT_TYPE",
    "REGISTRY",
    "CallbackMetric",
    "CollectorGroup",
    "Counter",
    "Family",
    "Gauge",
    "Histogram",
    "Registry",
    "Sample",
    "render",
]
