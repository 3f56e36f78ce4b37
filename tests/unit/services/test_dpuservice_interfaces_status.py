"""A DPUService's interfaces as Multus annotations, its conditions, and the create-or-update patch (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from controller.services.apply import update_patch
from controller.services.interfaces import InterfaceProblem, merge_networks, plan_interfaces
from controller.services.status import applications_ready, summary

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def svc(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "hbn", "namespace": "ns", "generation": 3},
            "spec": {"helmChart": {"source": {"repoURL": "oci://r", "version": "1"}}, **spec}}  # fmt: skip


def dsi(name: str, network: str, iface: str, *, sid: str = "sid", kind: str = "service",
        claimed: str | None = None) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {"name": name, "namespace": "ns"}
    if claimed is not None:
        meta["annotations"] = {"dpu.nvidia.com/consumed-by": claimed}
    inner = {"interfaceType": kind, "service": {"serviceID": sid, "network": network, "interfaceName": iface}}
    return {"metadata": meta, "spec": {"template": {"spec": {"template": {"spec": inner}}}}}


def test_without_interfaces_the_daemonset_is_passed_as_is() -> None:
    plan = plan_interfaces(svc(serviceDaemonSet={"labels": {"a": "b"}}), lambda n: None)
    assert plan.service_daemonset == {"labels": {"a": "b"}} and plan.to_claim == []
    assert plan_interfaces(svc(), lambda n: None).service_daemonset is None


def test_interfaces_become_sorted_multus_networks_and_unclaimed_ones_are_claimed() -> None:
    ifaces = {"p0": dsi("p0", "mybrhbn", "p0_if"), "app": dsi("app", "other-ns/iprequest", "app_sf", claimed="hbn")}
    plan = plan_interfaces(svc(serviceID="sid", interfaces=["p0", "app"], serviceDaemonSet={"annotations": {"k": "v"}}),
                           ifaces.get)  # fmt: skip
    assert plan.to_claim == ["p0"]
    assert plan.service_daemonset is not None
    assert plan.service_daemonset["annotations"]["k"] == "v"
    assert json.loads(plan.service_daemonset["annotations"][NETWORKS]) == [
        {"name": "iprequest", "namespace": "other-ns", "interface": "app_sf"},
        {"name": "mybrhbn", "interface": "p0_if"},
    ]


def test_the_users_network_entries_win_for_their_interface() -> None:
    user = [{"name": "custom", "interface": "p0_if", "ips": ["10.0.0.1/24"]}, {"name": "extra", "interface": "e0"}]
    plan = plan_interfaces(svc(interfaces=["p0"], serviceDaemonSet={"annotations": {NETWORKS: json.dumps(user)}}),
                           {"p0": dsi("p0", "ns2/mybrhbn", "p0_if")}.get)  # fmt: skip
    assert plan.service_daemonset is not None
    assert json.loads(plan.service_daemonset["annotations"][NETWORKS]) == [
        {"name": "custom", "namespace": "ns2", "interface": "p0_if", "ips": ["10.0.0.1/24"]},
        {"name": "extra", "interface": "e0"},
    ]
    assert merge_networks({"a": {"name": "z", "interface": "a"}}, []) == [{"name": "z", "interface": "a"}]


@pytest.mark.parametrize(
    ("iface", "message"),
    [
        (None, 'dpuserviceinterfaces.svc.dpu.nvidia.com "p0" not found'),
        (dsi("p0", "n", "i", kind="physical"), "wrong service definition in DPUServiceInterface p0"),
        (dsi("p0", "n", "i", sid="other"), "conflicting ServiceID in DPUServiceInterface p0"),
        (dsi("p0", "n", "i", claimed="someone-else"), "dpuServiceInterface p0 is in use by another DPUService"),
    ],
)
def test_unusable_interfaces_are_refused_with_dpfs_reasons(iface: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(InterfaceProblem) as info:
        plan_interfaces(svc(serviceID="sid", interfaces=["p0"]), lambda n: iface)
    assert str(info.value) == message


def test_a_malformed_user_network_annotation_is_an_error() -> None:
    with pytest.raises(InterfaceProblem, match="expected format is a list of objects"):
        plan_interfaces(svc(interfaces=["p0"], serviceDaemonSet={"annotations": {NETWORKS: "net1@eth1"}}),
                        {"p0": dsi("p0", "n", "i")}.get)  # fmt: skip


def app(name: str, sync: str = "", health: str = "") -> dict[str, Any]:
    status = {"sync": {"status": sync}, "health": {"status": health}} if sync or health else {}
    return {"metadata": {"name": name, "namespace": "op"}, "status": status}


def test_applications_ready_needs_every_app_synced_and_healthy_and_one_per_destination() -> None:
    s = svc()
    ok = applications_ready(s, [app("a", "Synced", "Healthy"), app("b", "Synced", "Healthy")], 2)
    assert (ok.type, ok.status, ok.reason, ok.observedGeneration) == ("ApplicationsReady", "True", "Success", 3)
    missing = applications_ready(s, [app("a", "Synced", "Healthy")], 2)
    assert missing.status == "False" and missing.reason == "Pending" and "1 of 2 Applications exist" in missing.message
    new = applications_ready(s, [app("a")], 1)
    assert new.status == "False" and "Application op/a is not yet deployed." in new.message
    degraded = applications_ready(s, [app("a", "OutOfSync", "Degraded")], 1)
    assert "Sync: OutOfSync, Health: Degraded" in degraded.message


def test_ready_summarises_the_first_condition_that_is_not_true() -> None:
    s = svc()
    good = applications_ready(s, [app("a", "Synced", "Healthy")], 1)
    assert summary(s, [good]).status == "True"
    bad = applications_ready(s, [], 1)
    top = summary(s, [good.model_copy(update={"type": "ApplicationsReconciled"}), bad])
    assert (top.type, top.status, top.reason) == ("Ready", "False", "Pending")
    assert top.message.startswith("ApplicationsReady: ")


def test_update_patch_writes_only_what_differs_guarded_by_resource_version() -> None:
    current = {"metadata": {"name": "s", "resourceVersion": "9", "labels": {"a": "1", "other": "x"}},
               "data": {"k": "v", "old": "o"}, "type": "Opaque"}  # fmt: skip
    assert update_patch(current, {"metadata": {"name": "s", "labels": {"a": "1"}}, "data": {"k": "v", "old": "o"},
                                  "type": "Opaque"}) == {}  # fmt: skip
    patch = update_patch(current, {"metadata": {"name": "s", "labels": {"a": "2"}}, "data": {"k": "v"},
                                   "type": "Opaque"})  # fmt: skip
    assert patch == {"data": {"old": None}, "metadata": {"labels": {"a": "2"}, "resourceVersion": "9"}}
