"""The DPUSet rollout planner: DPF's RollingUpdate budget (integer, percent rounded up), Recreate, availability."""

from __future__ import annotations

from typing import Any

import pytest

from controller.kube.objects import ObjKey
from controller.reconcilers.rollout import (
    Replacements,
    available,
    max_unavailable,
    plan_rollout,
    scaled_max_unavailable,
)
from dpfd.api.defaults import apply_defaults

NS = "dpf-operator-system"


def dpuset(strategy: dict[str, Any] | None, bfb: str = "bfb-new", flavor: str = "flavor-a") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeSelector": {"matchLabels": {"feature.node.kubernetes.io/dpu-enabled": "true"}},
        "dpuTemplate": {"spec": {"bfb": {"name": bfb}, "dpuFlavor": flavor}},
    }
    if strategy is not None:
        spec["strategy"] = strategy
    obj = {
        "apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
        "kind": "DPUSet",
        "metadata": {"name": "set-a", "namespace": NS, "uid": "uid-set"},
        "spec": spec,
    }
    return apply_defaults(obj)


def rolling(max_unavailable: int | str | None) -> dict[str, Any]:
    if max_unavailable is None:
        return {"type": "RollingUpdate"}
    return {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}}


def dpu(
    name: str,
    *,
    bfb: str = "bfb-old",
    flavor: str = "flavor-a",
    ready: str | None = "True",
    deleting: bool = False,
    uid: str | None = None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS, "uid": uid or f"uid-{name}"}
    if deleting:
        meta["deletionTimestamp"] = "2024-12-01T00:00:00Z"
    status: dict[str, Any] = {}
    if ready is not None:
        status = {"phase": "Ready" if ready == "True" else "OS Installing"}
        status["conditions"] = [{"type": "Ready", "status": ready, "reason": "x"}]
    return {"metadata": meta, "spec": {"bfb": bfb, "dpuFlavor": flavor}, "status": status}


def fleet(n: int, **kw: Any) -> dict[str, dict[str, Any]]:
    return {f"dpu-{i:02d}": dpu(f"dpu-{i:02d}", **kw) for i in range(n)}


def names(plan_dpus: list[dict[str, Any]]) -> list[str]:
    return [d["metadata"]["name"] for d in plan_dpus]


# -- the budget -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "total", "want"),
    [
        (1, 12, 1),
        (3, 12, 3),
        (20, 12, 12),  # at most the desired count
        ("25%", 12, 3),
        ("25%", 10, 3),  # 2.5 rounds up, as DPF's GetScaledValueFromIntOrPercent(roundUp=true)
        ("10%", 100, 10),
        ("10%", 101, 11),
        ("1%", 12, 1),  # 0.12 rounds up to 1
        ("100%", 12, 12),
        (0, 12, 1),  # DPF: a zero budget becomes 1 (its webhook refuses 0 anyway)
        ("0%", 12, 1),
    ],
)
def test_scaled_max_unavailable(value: int | str, total: int, want: int) -> None:
    assert scaled_max_unavailable(value, total) == want


@pytest.mark.parametrize("value", ["3", "abc", "25.5%", "%", True, 2.5])
def test_scaled_max_unavailable_refuses_what_is_not_int_or_percent(value: Any) -> None:
    with pytest.raises(ValueError, match=r"maxUnavailable: must be an integer or a percentage"):
        scaled_max_unavailable(value, 12)


def test_rolling_update_defaults_to_one_unavailable() -> None:
    assert max_unavailable(dpuset(rolling(None)), 12) == 1
    assert max_unavailable(dpuset({"type": "RollingUpdate", "rollingUpdate": {}}), 12) == 1


def test_budget_error_names_the_dpuset_field() -> None:
    ds = dpuset(rolling(1))
    ds["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] = "three"
    with pytest.raises(ValueError, match=r"DPUSet dpf-operator-system/set-a: spec\.strategy\.rollingUpdate"):
        max_unavailable(ds, 12)


# -- availability -----------------------------------------------------------------------------------


def test_available_needs_ready_true_and_not_deleting() -> None:
    assert available(dpu("a"))
    assert not available(dpu("a", ready="False"))
    assert not available(dpu("a", ready="Unknown"))
    assert not available(dpu("a", ready=None))  # just created: no status yet
    assert not available(dpu("a", deleting=True))


# -- RollingUpdate ----------------------------------------------------------------------------------


def test_rolling_integer_budget_replaces_that_many() -> None:
    existing = fleet(12)
    plan = plan_rollout(dpuset(rolling(2)), existing, existing.keys())
    assert names(plan.replace) == ["dpu-00", "dpu-01"]
    assert (plan.outdated, plan.waiting, plan.unavailable, plan.budget) == (12, 10, 2, 2)


def test_rolling_percent_budget_rounds_up() -> None:
    existing = fleet(10)
    plan = plan_rollout(dpuset(rolling("25%")), existing, existing.keys())
    assert len(plan.replace) == 3 and plan.budget == 3


def test_rolling_counts_unavailable_and_missing_dpus_against_the_budget() -> None:
    existing = fleet(12)
    existing["dpu-05"] = dpu("dpu-05", bfb="bfb-new", ready="False")  # updated, still installing
    wanted = [*existing, "dpu-12"]  # dpu-12 is wanted but not created yet
    plan = plan_rollout(dpuset(rolling("25%")), existing, wanted)  # 13 desired: budget ceil(3.25) = 4
    assert plan.budget == 4
    assert names(plan.replace) == ["dpu-00", "dpu-01"]  # 2 unavailable already + 2 = 4
    assert plan.unavailable == 4


def test_rolling_replaces_nothing_while_the_budget_is_spent() -> None:
    existing = fleet(12)
    for name in ("dpu-00", "dpu-01", "dpu-02"):
        existing[name] = dpu(name, deleting=True)  # the previous wave, being deleted
    plan = plan_rollout(dpuset(rolling("25%")), existing, existing.keys())
    assert plan.replace == []
    assert plan.outdated == 9 and plan.unavailable == 3


def test_rolling_replaces_outdated_unavailable_dpus_at_once() -> None:
    # They cost no availability: an outdated DPU stuck in Error is replaced even with the budget spent.
    existing = fleet(12)
    for name in ("dpu-00", "dpu-01", "dpu-02", "dpu-03"):
        existing[name] = dpu(name, ready="False")
    plan = plan_rollout(dpuset(rolling(1)), existing, existing.keys())
    assert names(plan.replace) == ["dpu-00", "dpu-01", "dpu-02", "dpu-03"]
    assert plan.unavailable == 4 and plan.waiting == 8


def test_rolling_when_all_are_unavailable_already() -> None:
    existing = fleet(6, ready=None)
    plan = plan_rollout(dpuset(rolling(1)), existing, existing.keys())
    assert len(plan.replace) == 6 and plan.unavailable == 6


def test_nothing_outdated_means_nothing_replaced() -> None:
    existing = fleet(12, bfb="bfb-new")
    existing["dpu-03"] = dpu("dpu-03", bfb="bfb-new", ready="False")
    for strategy in (rolling("25%"), {"type": "Recreate"}):
        plan = plan_rollout(dpuset(strategy), existing, existing.keys())
        assert plan.replace == [] and plan.outdated == 0 and plan.unavailable == 1


def test_a_flavor_change_is_outdated_too() -> None:
    existing = fleet(4, bfb="bfb-new", flavor="flavor-a")
    plan = plan_rollout(dpuset(rolling(4), flavor="flavor-b"), existing, existing.keys())
    assert len(plan.replace) == 4


def test_unsettled_dpus_count_as_unavailable_and_are_left_alone() -> None:
    # The cache may not show the last write yet (a delete just sent): treat it as down, do not act again.
    existing = fleet(12)
    plan = plan_rollout(dpuset(rolling(3)), existing, existing.keys(), unsettled={"dpu-00", "dpu-01"})
    assert names(plan.replace) == ["dpu-02"]
    assert plan.unavailable == 3


def test_dpus_no_longer_wanted_are_not_part_of_the_rollout() -> None:
    existing = fleet(4)
    existing["gone-node"] = dpu("gone-node", ready=None)
    plan = plan_rollout(dpuset(rolling(1)), existing, [n for n in existing if n != "gone-node"])
    assert names(plan.replace) == ["dpu-00"]
    assert plan.unavailable == 1


# -- Recreate ---------------------------------------------------------------------------------------


def test_recreate_replaces_every_outdated_dpu_at_once() -> None:
    existing = fleet(12)
    existing["dpu-04"] = dpu("dpu-04", bfb="bfb-new")
    existing["dpu-07"] = dpu("dpu-07", deleting=True)
    plan = plan_rollout(dpuset({"type": "Recreate"}), existing, existing.keys())
    assert len(plan.replace) == 10 and "dpu-04" not in names(plan.replace) and "dpu-07" not in names(plan.replace)
    assert plan.budget is None and plan.waiting == 0 and plan.unavailable == 11


def test_recreate_is_the_default_strategy() -> None:
    existing = fleet(3)
    plan = plan_rollout(dpuset(None), existing, existing.keys())
    assert len(plan.replace) == 3 and plan.budget is None


# -- Replacements: expectations that outlive unrelated cache events -------------------------------


def test_replacement_stays_unsettled_until_the_cache_shows_it_going() -> None:
    key = ObjKey(NS, "set-a")
    r = Replacements(ttl=30.0)
    old = dpu("dpu-00", uid="u1")
    r.expect(key, old, now=100.0)
    assert r.unsettled(key, {"dpu-00": old}, now=101.0) == {"dpu-00"}  # a status event: still unsettled
    assert r.unsettled(ObjKey(NS, "set-b"), {"dpu-00": old}, now=101.0) == set()
    assert r.unsettled(key, {"dpu-00": dpu("dpu-00", uid="u1", deleting=True)}, now=101.0) == set()
    assert r.unsettled(key, {"dpu-00": old}, now=101.0) == set()  # settled once: forgotten


@pytest.mark.parametrize(
    ("seen", "at"),
    [
        ({}, 101.0),  # gone from the cache
        ({"dpu-00": dpu("dpu-00", uid="u2")}, 101.0),  # recreated: another incarnation
        ({"dpu-00": dpu("dpu-00", uid="u1")}, 130.0),  # the delete never showed: give up after ttl
    ],
)
def test_replacement_settles(seen: dict[str, dict[str, Any]], at: float) -> None:
    key = ObjKey(NS, "set-a")
    r = Replacements(ttl=30.0)
    r.expect(key, dpu("dpu-00", uid="u1"), now=100.0)
    assert r.unsettled(key, seen, now=at) == set()
    assert r.unsettled(key, {"dpu-00": dpu("dpu-00", uid="u1")}, now=at) == set()
