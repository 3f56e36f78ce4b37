"""Per-pool, per-node IPAM ranges in etcd, changed only by transactions that cannot hand one range out twice.

Every change of a pool's ranges also rewrites the pool's marker key, and is committed only if the marker's
mod_revision is still the one the writer read the ranges at (`PoolState.revision`). Two writers that read the
same state cannot both commit: the second finds the marker moved, re-reads and re-plans. `apply` also refuses a
desired set whose ranges overlap, so no committed state ever has one address in two nodes' ranges.
A node's range whose addresses change or that goes away takes the node's address allocations with it (same transaction).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from dpfd.store.client import Store
from dpfd.store.ipam_types import IpamError, NodeRange
from dpfd.store.keys import (
    ipam_node_prefix,
    ipam_pool_key,
    ipam_pool_prefix,
    ipam_range_key,
    ipam_ranges_prefix,
)
from dpfd.store.types import MAX_TXN_OPS, Compare, Delete, Op, Put

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolState:
    """A pool's ranges as of one moment. revision: the marker's mod_revision then (0: the pool has none)."""

    pool: str
    ranges: dict[str, NodeRange]
    revision: int
    meta: dict[str, object] = field(default_factory=dict)  # what the last writer kept in the marker


def check_disjoint(pool: str, ranges: Mapping[str, NodeRange]) -> None:
    """IpamError naming the two nodes if any two ranges share an address."""
    reach: tuple[str, NodeRange] | None = None  # of the ranges so far, the one reaching furthest
    for b, rb in sorted(ranges.items(), key=lambda item: item[1].first):
        if reach is not None and reach[1].overlaps(rb):
            a, ra = reach
            raise IpamError(f"pool {pool}: range {ra.describe()} of {a} overlaps {rb.describe()} of {b}")
        if reach is None or rb.last > reach[1].last:
            reach = (b, rb)


class PoolRanges:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def read(self, pool: str) -> PoolState:
        """Every node's range and the marker's revision, as of one etcd revision."""
        kvs, _ = await self._store.get_prefix(ipam_pool_prefix(pool))
        marker = ipam_pool_key(pool)
        prefix = ipam_ranges_prefix(pool)
        ranges: dict[str, NodeRange] = {}
        revision = 0
        meta: dict[str, object] = {}
        for kv in kvs:
            if kv.key == marker:
                revision = kv.mod_revision
                try:
                    meta = dict(json.loads(kv.value))
                except (ValueError, TypeError):
                    log.warning("pool %s: marker %s holds no JSON object; ignoring it", pool, marker)
            elif kv.key.startswith(prefix):
                ranges[kv.key[len(prefix) :]] = NodeRange.from_json(kv.value, f"pool {pool} key {kv.key}")
        return PoolState(pool, ranges, revision, meta)

    async def get(self, pool: str, node: str) -> tuple[NodeRange, int] | None:
        """The node's range and its key's mod_revision, None if it has none."""
        kv = await self._store.get(ipam_range_key(pool, node))
        if kv is None:
            return None
        return NodeRange.from_json(kv.value, f"pool {pool} range of {node}"), kv.mod_revision

    async def apply(self, state: PoolState, desired: Mapping[str, NodeRange], meta: Mapping[str, object]) -> bool:
        """Make the pool's ranges `desired` if they are still as in `state`. False (nothing written) if another
        writer changed them since: read again and re-plan. `meta` is kept in the marker (for people reading
        etcd). More than one transaction's worth of changes goes in several, each compared to the revision the
        previous one made, removals first, so every intermediate state is a subset of old-kept plus desired."""
        pool = state.pool
        check_disjoint(pool, desired)
        removes: list[Op] = []
        puts: list[Op] = []
        for node, old in sorted(state.ranges.items()):
            new = desired.get(node)
            if new is not None and _span(new) == _span(old):
                continue  # kept, or only its gateway, routes or labels change: its allocations stay
            removes.append(Delete(ipam_range_key(pool, node)))
            removes.append(Delete(ipam_node_prefix(pool, node), prefix=True))
        for node, new in sorted(desired.items()):
            if state.ranges.get(node) != new:
                puts.append(Put(ipam_range_key(pool, node), new.to_json()))
        ops = removes + puts
        if not ops:
            return True
        marker = Put(ipam_pool_key(pool), json.dumps(dict(meta), sort_keys=True, default=str))
        per_txn = MAX_TXN_OPS - 1
        revision = state.revision
        for start in range(0, len(ops), per_txn):
            chunk = _without_overwritten_deletes(ops[start : start + per_txn])
            res = await self._store.txn([Compare.mod_revision(ipam_pool_key(pool), "=", revision)], [*chunk, marker])
            if not res.succeeded:
                if start:
                    log.warning("pool %s: another writer came in after %d of %d changes", pool, start, len(ops))
                return False
            revision = res.revision
        return True

    async def delete_pool(self, pool: str) -> int:
        """Drop the pool with every range and allocation in it; how many keys went."""
        return await self._store.delete_prefix(ipam_pool_prefix(pool))


def _span(r: NodeRange) -> tuple[object, ...]:
    return (r.subnet, r.first, r.last)


def _without_overwritten_deletes(chunk: list[Op]) -> list[Op]:
    """etcd refuses a txn that deletes and puts one key: the put alone does both."""
    put = {op.key for op in chunk if isinstance(op, Put)}
    return [op for op in chunk if not (isinstance(op, Delete) and not op.prefix and op.key in put)]
