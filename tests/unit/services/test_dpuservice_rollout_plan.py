"""The rollout budget (beyond DPF): the max-unavailable annotation, which Applications may move to a new spec now,
what counts as available, the DaemonSet strategy default inside each DPU cluster, and the RolloutProgressing
condition."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from controller.services.argocd import helm_values
from controller.services.rollout import (
    Budget,
    available,
    budget_of,
    plan_rollout,
    rollout_condition,
    spec_hash,
)


def service(annotation: str | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "hbn", "namespace": "t", "generation": 3}
    if annotation is not None:
        meta["annotations"] = {"svc.dpu.nvidia.com/max-unavailable": annotation}
    return {"metadata": meta, "spec": spec}


def app(cluster: str, tag: str, state: str = "settled") -> dict[str, Any]:
    """An Application on values tag `tag`; state: settled (ArgoCD verdict on this source), stale (Synced+Healthy
    compared to another source), down (Degraded), or new (no status yet)."""
    source = {"repoURL": "r", "chart": "hbn", "helm": {"valuesObject": {"tag": tag}}}
    obj: dict[str, Any] = {
        "metadata": {"name": f"{cluster}-hbn"},
        "spec": {"source": source, "destination": {"name": cluster, "namespace": "t"}, "project": "p"},
    }
    compared = {**source, "helm": {"valuesObject": {"tag": "older"}}} if state == "stale" else source
    health = "Degraded" if state == "down" else "Healthy"
    if state != "new":
        obj["status"] = {"sync": {"status": "Synced", "comparedTo": {"source": compared}}, "health": {"status": health}}
    return obj


def fleet(*apps: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["metadata"]["name"]: a for a in apps}


@pytest.mark.parametrize(
    ("annotation", "value", "of_ten", "problem"),
    [
        (None, 1, 1, False),
        ("3", 3, 3, False),
        ("25%", "25%", 2, False),
        ("5%", "5%", 1, False),  # rounded down, but at least one so the rollout moves
        ("100%", "100%", 10, False),
        ("0", 1, 1, True),
        ("-1", 1, 1, True),
        ("150%", 1, 1, True),
        ("lots", 1, 1, True),
    ],
)
def test_budget_from_the_annotation(annotation: str | None, value: int | str, of_ten: int, problem: bool) -> None:
    budget = budget_of(service(annotation))
    assert budget.value == value and budget.clusters(10) == of_ten and bool(budget.problem) == problem


def test_available_means_synced_and_healthy_on_the_source_the_application_carries() -> None:
    assert available(app("dc1", "v1"))
    assert not available(app("dc1", "v1", "stale"))  # ArgoCD has not looked at this spec yet
    assert not available(app("dc1", "v1", "down"))
    assert not available(app("dc1", "v1", "new"))


def test_spec_hash_ignores_the_destination_cluster_only() -> None:
    assert spec_hash(app("dc1", "v1")["spec"]) == spec_hash(app("dc2", "v1")["spec"])
    assert spec_hash(app("dc1", "v1")["spec"]) != spec_hash(app("dc1", "v2")["spec"])


def test_healthy_applications_move_within_the_budget_in_name_order() -> None:
    current = fleet(*(app(f"dc{i}", "v1") for i in range(1, 6)))
    desired = fleet(*(app(f"dc{i}", "v2", "new") for i in range(1, 6)))
    plan = plan_rollout(current, desired, Budget(2))
    assert plan.update == ["dc1-hbn", "dc2-hbn"] and plan.held == ["dc3-hbn", "dc4-hbn", "dc5-hbn"]
    assert plan.unavailable == ["dc1-hbn", "dc2-hbn"] and plan.in_progress
    assert plan.older == {c: spec_hash(current["dc3-hbn"]["spec"]) for c in ("dc3", "dc4", "dc5")}
    assert plan.desired_hash == spec_hash(desired["dc1-hbn"]["spec"])


def test_updated_ones_spend_the_budget_until_argocd_reports_them_healthy() -> None:
    desired = fleet(*(app(f"dc{i}", "v2", "new") for i in range(1, 4)))
    current = fleet(app("dc1", "v2", "new"), app("dc2", "v1"), app("dc3", "v1"))
    plan = plan_rollout(current, desired, Budget(1))
    assert plan.update == [] and plan.held == ["dc2-hbn", "dc3-hbn"] and plan.on_desired == ["dc1-hbn"]
    current["dc1-hbn"] = app("dc1", "v2", "stale")  # the previous spec's verdict does not count
    assert plan_rollout(current, desired, Budget(1)).update == []
    current["dc1-hbn"] = app("dc1", "v2")
    plan = plan_rollout(current, desired, Budget(1))
    assert plan.update == ["dc2-hbn"] and plan.held == ["dc3-hbn"]


def test_unavailable_ones_move_at_once_and_count_against_the_budget() -> None:
    desired = fleet(*(app(f"dc{i}", "v2", "new") for i in range(1, 4)))
    current = fleet(app("dc1", "v1"), app("dc2", "v1"), app("dc3", "v1", "down"))
    plan = plan_rollout(current, desired, Budget(1))
    assert plan.update == ["dc3-hbn"] and plan.held == ["dc1-hbn", "dc2-hbn"]


def test_new_applications_are_not_gated_and_a_converged_fleet_is_complete() -> None:
    desired = fleet(app("dc1", "v2", "new"), app("dc2", "v2", "new"))
    plan = plan_rollout(fleet(app("dc1", "v2")), desired, Budget(1))
    assert plan.created == ["dc2-hbn"] and plan.update == [] and plan.held == []
    assert plan.unavailable == ["dc2-hbn"] and plan.in_progress
    done = plan_rollout(fleet(app("dc1", "v2"), app("dc2", "v2")), desired, Budget(1))
    assert not done.in_progress
    condition = rollout_condition(service(), done)
    assert (condition.type, condition.status, condition.reason) == ("RolloutProgressing", "False", "Complete")
    assert condition.message == f"spec {done.desired_hash} on 2 of 2 Applications; updated: dc1-hbn, dc2-hbn; " \
                                "maxUnavailable 1"  # fmt: skip


def test_condition_while_rolling_and_with_an_unusable_budget() -> None:
    desired = fleet(app("dc1", "v2", "new"), app("dc2", "v2", "new"))
    plan = plan_rollout(fleet(app("dc1", "v1"), app("dc2", "v1")), desired, Budget())
    condition = rollout_condition(service("none"), plan)
    assert (condition.status, condition.reason, condition.observedGeneration) == ("True", "RollingOut", 3)
    assert "spec" in condition.message and "on 1 of 2 Applications; updated: dc1-hbn; waiting: dc2-hbn" in (
        condition.message
    )
    assert "not yet Synced+Healthy: dc1-hbn" in condition.message
    assert "svc.dpu.nvidia.com/max-unavailable 'none' is not a count" in condition.message


def test_values_default_the_daemonset_strategy_to_the_budget_and_users_keep_theirs_whole() -> None:
    values = helm_values(service("25%"), None)
    assert values["serviceDaemonSet"]["updateStrategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": "25%"},
    }
    own = {"updateStrategy": {"type": "OnDelete"}}
    assert helm_values(service("2"), own)["serviceDaemonSet"]["updateStrategy"] == {"type": "OnDelete"}
    svc = service("2", helmChart={"values": {"serviceDaemonSet": {"updateStrategy": {"type": "OnDelete"}}}})
    before = copy.deepcopy(svc)
    assert helm_values(svc, None)["serviceDaemonSet"]["updateStrategy"] == {"type": "OnDelete"}  # not merged
    assert svc == before
