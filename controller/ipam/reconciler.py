"""Applies a DPUServiceIPAM's plan to etcd for the nodes it selects, through dpfd.store.ipam_ranges.

The one call a controller makes, for each DPUServiceIPAM change and for each change of the Nodes it selects
(and with spec None once the object is deleted):

    await IpamReconciler(store).reconcile(name, ipam.spec, nodes)   # nodes: names of the selected DPU Nodes

It reads the pool, plans against what is there and commits only if no other writer changed the pool since;
if one did, it reads and plans again. Nodes the pool has room for get their ranges even when others do not;
then PoolExhausted names the ones left out (a reason for the object's Ready condition).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from controller.ipam.plan import Plan, plan_network, plan_subnet
from dpfd.api.chains import DPUServiceIPAMSpec
from dpfd.store.client import Store
from dpfd.store.ipam_ranges import PoolRanges
from dpfd.store.ipam_types import IpamError

log = logging.getLogger(__name__)

MAX_CONFLICTS = 100  # other writers winning in a row before giving up (they never take this long in practice)


def mode_of(spec: DPUServiceIPAMSpec) -> str:
    if spec.ipv4Network is not None:
        return "ipv4Network"
    if spec.ipv4Subnet is not None:
        return "ipv4Subnet"
    raise IpamError("DPUServiceIPAM spec sets neither ipv4Network nor ipv4Subnet")


class IpamReconciler:
    def __init__(self, store: Store) -> None:
        self._ranges = PoolRanges(store)
        self.conflicts = 0  # commits lost to another writer (for tests and metrics)

    async def reconcile(self, pool: str, spec: DPUServiceIPAMSpec | None, nodes: Sequence[str]) -> Plan:
        """Make pool `pool`'s ranges the plan of `spec` for `nodes`; spec None deletes the pool. Returns the
        plan committed; raises PoolExhausted (after committing) if some nodes got no range."""
        if spec is None:
            gone = await self._ranges.delete_pool(pool)
            log.info("pool %s deleted (%d keys)", pool, gone)
            return Plan(pool)
        mode = mode_of(spec)
        labels = spec.metadata.labels if spec.metadata is not None else None
        for _ in range(MAX_CONFLICTS):
            state = await self._ranges.read(pool)
            # A mode switch replaces the pool, as DPF deletes the old nv-ipam pool: nothing old is kept.
            existing = state.ranges if state.meta.get("mode", mode) == mode else {}
            if spec.ipv4Network is not None:
                plan = plan_network(pool, spec.ipv4Network, nodes, existing, labels)
            elif spec.ipv4Subnet is not None:
                plan = plan_subnet(pool, spec.ipv4Subnet, nodes, existing, labels)
            if await self._ranges.apply(state, plan.ranges, {"mode": mode}):
                plan.check()
                return plan
            self.conflicts += 1
        raise IpamError(f"pool {pool}: other writers changed it {MAX_CONFLICTS} times while planning; giving up")
