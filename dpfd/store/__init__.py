"""dpf's etcd store: the only place that talks to etcd. See client.Store."""

from dpfd.store.client import Store
from dpfd.store.election import Election
from dpfd.store.errors import Compacted, SessionLost, StoreError, StoreUnavailable
from dpfd.store.lease import Session
from dpfd.store.lock import Lock
from dpfd.store.semaphore import Semaphore
from dpfd.store.types import (
    MAX_TXN_OPS,
    Compare,
    Delete,
    KeyValue,
    Op,
    Put,
    StoreStats,
    TxnResult,
    WatchEvent,
)
from dpfd.store.watch import Watch

__all__ = [
    "MAX_TXN_OPS",
    "Compacted",
    "Compare",
    "Delete",
    "Election",
    "KeyValue",
    "Lock",
    "Op",
    "Put",
    "Semaphore",
    "Session",
    "SessionLost",
    "Store",
    "StoreError",
    "StoreStats",
    "StoreUnavailable",
    "TxnResult",
    "Watch",
    "WatchEvent",
]
