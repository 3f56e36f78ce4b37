"""DPUSet rollouts: which outdated DPUs to replace now, as a pure planner (DPF v24.10's `rolloutRolling`).

A DPU is outdated when its BFB or DPUFlavor differs from the DPUSet template (`dpuset_desired.outdated`;
DPF compares nothing else: template nodeLabels are patched into DPUs in place). Replacing a DPU means
deleting it, as DPF does; the DPUSet reconciler recreates it from the template once it is gone.

- RollingUpdate: the budget is `maxUnavailable` of the desired DPU count. A percentage is rounded *up*
  (DPF calls `intstr.GetScaledValueFromIntOrPercent(..., roundUp=true)`, unlike a Deployment's
  maxUnavailable, which rounds down), then clamped to at least 1 and at most the desired count.
  Unavailable = desired DPUs that do not exist yet, plus existing ones that are being deleted, lack a
  `Ready` condition with status True, or whose last write the cache has not shown yet. Outdated DPUs that
  are unavailable anyway are replaced at once (they cost no availability); the others only while the
  unavailable count stays within the budget.
- Recreate: every outdated DPU is replaced at once. (DPF v24.10 leaves Recreate DPUs for the user to
  delete by hand and later renamed that behaviour OnDelete; its earlier `rolloutRecreate`, and the
  strategy's name, replace them all at once, which is what this project does.)
"""

from __future__ import annotations

import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from controller.kube.objects import Obj, ObjKey, is_deleting, name_of, namespace_of, uid_of
from controller.reconcilers.dpuset_desired import outdated

RECREATE = "Recreate"
ROLLING_UPDATE = "RollingUpdate"
DEFAULT_MAX_UNAVAILABLE = 1  # DPF's webhook default for RollingUpdate


def _strategy(dpuset: Obj) -> Obj:
    return (dpuset.get("spec") or {}).get("strategy") or {}


def strategy_type(dpuset: Obj) -> str:
    return str(_strategy(dpuset).get("type") or RECREATE)


def scaled_max_unavailable(value: int | str, total: int, *, where: str = "maxUnavailable") -> int:
    """`value` (an integer or "N%") as a DPU count out of `total`: percent rounded up, at least 1, at most `total`.

    Raises ValueError naming `where` for anything else (DPF's webhook refuses those before they get here).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        scaled = value
    elif isinstance(value, str) and value.endswith("%") and value[:-1].isdigit():
        scaled = -(-int(value[:-1]) * total // 100)  # ceil without floats
    else:
        raise ValueError(f'{where}: must be an integer or a percentage like "25%", got {value!r}')
    if scaled <= 0:
        return 1  # DPF: a budget of zero would stall the rollout forever
    return min(scaled, total)


def max_unavailable(dpuset: Obj, total: int) -> int:
    """The RollingUpdate budget of `dpuset` for `total` desired DPUs."""
    rolling = _strategy(dpuset).get("rollingUpdate") or {}
    raw = rolling.get("maxUnavailable")
    where = f"DPUSet {namespace_of(dpuset)}/{name_of(dpuset)}: spec.strategy.rollingUpdate.maxUnavailable"
    return scaled_max_unavailable(DEFAULT_MAX_UNAVAILABLE if raw is None else raw, total, where=where)


def available(dpu: Obj) -> bool:
    """Not being deleted and its `Ready` condition is True (DPF counts a missing or False one as unavailable;
    an Unknown one counts as unavailable here too)."""
    if is_deleting(dpu):
        return False
    for cond in (dpu.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


@dataclass(frozen=True)
class RolloutPlan:
    replace: list[Obj]  # outdated DPUs to delete now, by name
    outdated: int  # outdated DPUs among the desired ones, replaced now or later
    unavailable: int  # desired DPUs unavailable once `replace` is done
    budget: int | None  # the RollingUpdate budget; None for Recreate

    @property
    def waiting(self) -> int:
        """Outdated DPUs left for a later reconcile."""
        return self.outdated - len(self.replace)


def plan_rollout(
    dpuset: Obj,
    existing: Mapping[str, Obj],
    wanted: Collection[str],
    unsettled: Collection[str] = (),
) -> RolloutPlan:
    """Which of the DPUSet's DPUs (`existing`, by name) to replace now.

    `dpuset` has its defaults applied; `wanted` names the DPUs it should have (its desired placements);
    `unsettled` names DPUs whose latest write the cache may not show yet: they count as unavailable and
    are never replaced in this pass. DPUs not wanted are not part of the rollout (they are being removed).
    """
    total = len(wanted)
    candidates: list[Obj] = []
    unavailable = 0
    down: set[str] = set()
    for name in sorted(wanted):
        dpu = existing.get(name)
        if dpu is None or name in unsettled or not available(dpu):
            unavailable += 1
            down.add(name)
        if dpu is not None and name not in unsettled and not is_deleting(dpu) and outdated(dpuset, dpu):
            candidates.append(dpu)

    if strategy_type(dpuset) != ROLLING_UPDATE:
        newly_down = sum(1 for d in candidates if name_of(d) not in down)
        return RolloutPlan(candidates, len(candidates), unavailable + newly_down, None)

    budget = max_unavailable(dpuset, total)
    replace: list[Obj] = []
    for dpu in candidates:
        if name_of(dpu) in down:
            replace.append(dpu)  # unavailable already: replacing it costs nothing
        elif unavailable < budget:
            replace.append(dpu)
            unavailable += 1
    return RolloutPlan(replace, len(candidates), unavailable, budget)


@dataclass
class Replacements:
    """DPUs deleted for a rollout, per DPUSet, until the cache shows them going.

    The reconciler's own write expectations end at the next cache event for a DPU, and an event about an
    earlier write (a status update) can arrive after the delete was sent: the DPU would then look available
    again and the next wave could start early. A replaced DPU stays unsettled until the cache shows it
    deleting, gone, or replaced by another incarnation (another uid), or `ttl` seconds pass.
    """

    ttl: float = 30.0
    _pending: dict[ObjKey, dict[str, tuple[str, float]]] = field(default_factory=dict)

    def expect(self, dpuset: ObjKey, dpu: Obj, now: float | None = None) -> None:
        when = time.monotonic() if now is None else now
        self._pending.setdefault(dpuset, {})[name_of(dpu)] = (uid_of(dpu), when + self.ttl)

    def unsettled(self, dpuset: ObjKey, existing: Mapping[str, Obj], now: float | None = None) -> set[str]:
        """Names of the DPUSet's DPUs (`existing`, from the cache) whose deletion the cache does not show yet."""
        pending = self._pending.get(dpuset)
        if not pending:
            return set()
        when = time.monotonic() if now is None else now
        out: set[str] = set()
        for name, (uid, deadline) in list(pending.items()):
            dpu = existing.get(name)
            if dpu is None or is_deleting(dpu) or uid != uid_of(dpu) or deadline <= when:
                del pending[name]
            else:
                out.add(name)
        if not pending:
            del self._pending[dpuset]
        return out
