"""Errors raised by the store. Every message names the operation and the key it concerned."""

from __future__ import annotations


class StoreError(Exception):
    """etcd refused or failed a request for a reason that retrying will not fix."""


class StoreUnavailable(StoreError):
    """No etcd endpoint answered within the request timeout (all members down, no quorum, partition)."""


class Compacted(StoreError):
    """The requested revision has been compacted away."""

    def __init__(self, message: str, compact_revision: int = 0) -> None:
        super().__init__(message)
        self.compact_revision = compact_revision


class SessionLost(StoreError):
    """The session lease is gone, and with it whatever was bound to it (lock, semaphore slot, candidacy)."""
