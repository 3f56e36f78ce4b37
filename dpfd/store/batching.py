"""Split a list of writes into etcd transactions that can be sent several at a time.

etcd rejects a txn that writes one key twice ("duplicate key given in txn request") or that puts a key a
delete in the same txn also covers, so such a write starts a new batch. Batches that touch overlapping keys
must be applied in order; the ones that do not may be in flight together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dpfd.store.types import MAX_TXN_OPS, Delete, Op, Put


@dataclass
class Batch:
    ops: list[Op] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)  # exact keys put or deleted
    prefixes: list[str] = field(default_factory=list)  # prefixes deleted

    def _touches(self, key: str, prefix: bool) -> bool:
        if prefix:
            return any(k.startswith(key) for k in self.keys) or any(
                p.startswith(key) or key.startswith(p) for p in self.prefixes
            )
        if key in self.keys:
            return True
        return bool(self.prefixes) and any(key.startswith(p) for p in self.prefixes)  # most batches have none

    def touches(self, op: Op) -> bool:
        return self._touches(op.key, isinstance(op, Delete) and op.prefix)

    def overlaps(self, other: Batch) -> bool:
        """True if applying the two in either order could give different results."""
        small, big = (self, other) if len(self.keys) <= len(other.keys) else (other, self)
        if any(big._touches(k, False) for k in small.keys):
            return True
        return any(other._touches(p, True) for p in self.prefixes) or any(
            self._touches(p, True) for p in other.prefixes
        )

    def add(self, op: Op) -> None:
        self.ops.append(op)
        if isinstance(op, Delete) and op.prefix:
            self.prefixes.append(op.key)
        else:
            self.keys.add(op.key)


def plan_batches(ops: Sequence[Op], max_ops: int = MAX_TXN_OPS) -> list[Batch]:
    """Keep the order of ops; start a new batch when the current is full or already touches the op's key."""
    batches: list[Batch] = []
    current = Batch()
    for op in ops:
        if not isinstance(op, Put | Delete):
            raise TypeError(f"commit: {op!r} is not a Put or Delete")
        if len(current.ops) >= max_ops or current.touches(op):
            batches.append(current)
            current = Batch()
        current.add(op)
    if current.ops:
        batches.append(current)
    return batches
