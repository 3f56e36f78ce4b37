"""The metrics dpf's code updates as it works: etcd requests, reconciles, phase changes, BFB downloads.

Defined once per process in the default registry, so the store (shared by dpfd and the controller), the agent and
the BFB cache update them without being handed anything. Values read at scrape time instead are in collectors.py.
docs/metrics.md describes every one.
"""

from __future__ import annotations

from dpfd.metrics.registry import Counter, Gauge, Histogram

# etcd answers in under a millisecond on a quiet local member; a request with retries across a failover can take
# the whole request timeout (5 s by default).
ETCD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# A reconcile is mostly a few ms of bookkeeping; some wait on OVS, DMS or the Kubernetes API for seconds.
RECONCILE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# A BFB is about 1.5 GB: seconds on a LAN mirror, up to an hour over a slow link.
DOWNLOAD_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)

ETCD_REQUEST_SECONDS = Histogram(
    "dpf_etcd_request_duration_seconds",
    "Time an etcd request took as its caller saw it, retries and endpoint failover included, by operation.",
    ["operation"],
    buckets=ETCD_BUCKETS,
)
ETCD_REQUEST_ERRORS = Counter(
    "dpf_etcd_request_errors_total",
    "etcd requests that failed after their retries (or were refused), by operation.",
    ["operation"],
)

RECONCILE_SECONDS = Histogram(
    "dpf_reconcile_duration_seconds",
    "Time one reconcile of one object took, by kind and result (success or error).",
    ["kind", "result"],
    buckets=RECONCILE_BUCKETS,
)
RECONCILE_ERRORS = Counter(
    "dpf_reconcile_errors_total",
    "Reconciles that raised an error (the object is retried with backoff), by kind.",
    ["kind"],
)
PHASE_TRANSITIONS = Counter(
    "dpf_phase_transitions_total",
    "Times an object this node reports entered a phase (a first report counts as entering its phase), by kind "
    "and the phase entered.",
    ["kind", "phase"],
)

BFB_DOWNLOAD_BYTES = Counter(
    "dpf_bfb_download_bytes_total",
    "BFB image bytes received over the network (resumed and failed downloads included).",
)
BFB_CACHE_HITS = Counter(
    "dpf_bfb_cache_hits_total",
    "BFB fetches answered from the cache without downloading.",
)
BFB_DOWNLOADS = Counter(
    "dpf_bfb_downloads_total",
    "BFB downloads that ended, by result: success, or the failure's reason (the condition reason reported).",
    ["result"],
)
BFB_DOWNLOAD_SECONDS = Histogram(
    "dpf_bfb_download_duration_seconds",
    "Time a successful BFB download took, from its start to the image filed in the cache.",
    buckets=DOWNLOAD_BUCKETS,
)
BFB_DOWNLOADS_IN_PROGRESS = Gauge(
    "dpf_bfb_downloads_in_progress",
    "BFB downloads running or waiting for a download slot now.",
)
