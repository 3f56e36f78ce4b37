"""The DPFOperatorConfig read into a plan (pause, component switches to families, MTUs), the MTUs added to a DPU
intent's context, and the config's Ready summary."""

from __future__ import annotations

from typing import Any

from controller.operatorconfig import status as st
from controller.operatorconfig.context import with_mtus
from controller.operatorconfig.plan import (
    CHAINS,
    CREDENTIALS,
    DPUDEPLOYMENTS,
    DPUSERVICES,
    FAMILIES,
    IPAM,
    PROVISIONING,
    Plan,
    disabled_components,
    plan_of,
)


def config(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "dpfoperatorconfig", "namespace": "dpf-operator-system", "generation": 3},
        "spec": {"provisioningController": {"bfbPVCName": "bfb-pvc"}, **spec},
    }


def test_one_plain_config_runs_everything_with_default_mtus() -> None:
    plan = plan_of([config()])
    assert plan.config == ("dpf-operator-system", "dpfoperatorconfig")
    assert plan.families == FAMILIES and not plan.paused
    assert (plan.high_speed_mtu, plan.control_plane_mtu) == (1500, 1500)
    assert all(plan.runs(f) for f in FAMILIES)


def test_none_or_several_configs_take_nothing_from_them() -> None:
    for configs in ([], [config(overrides={"paused": True}), config()]):
        plan = plan_of(configs)
        assert plan == Plan() and plan.operator_namespace is None
        assert plan.runs(PROVISIONING) and plan.high_speed_mtu is None


def test_paused_runs_no_family() -> None:
    plan = plan_of([config(overrides={"paused": True})])
    assert plan.paused and not any(plan.runs(f) for f in FAMILIES)
    assert not plan_of([config(overrides={"paused": False})]).paused


def test_component_switches_map_to_families() -> None:
    off = plan_of([config(dpuServiceController={"disable": True})]).families
    assert off == {PROVISIONING}
    assert plan_of([config(provisioningController={"bfbPVCName": "x", "disable": True})]).families == (
        FAMILIES - {PROVISIONING}
    )
    assert plan_of([config(nvipam={"disable": True})]).families == FAMILIES - {IPAM}
    assert plan_of([config(serviceSetController={"disable": True})]).families == FAMILIES - {CHAINS}
    # Components no family of ours carries out change nothing.
    assert plan_of([config(flannel={"disable": True}, multus={"disable": True})]).families == FAMILIES
    assert plan_of([config(nvipam={"disable": False})]).families == FAMILIES
    assert {DPUSERVICES, DPUDEPLOYMENTS, CREDENTIALS} <= FAMILIES


def test_disabled_components_in_spec_order() -> None:
    c = config(multus={"disable": True}, flannel={"disable": False}, ovsCNI={"disable": True})
    assert disabled_components(c) == ["multus", "ovsCNI"]


def test_mtus_reach_the_context_only_with_a_config() -> None:
    plan = plan_of([config(networking={"highSpeedMTU": 9000, "controlPlaneMTU": 1400})])
    ctx = with_mtus({"numVFs": 16}, plan)
    assert ctx == {"numVFs": 16, "mtu": 9000, "controlPlaneMTU": 1400}
    assert with_mtus({"numVFs": 16}, Plan()) == {"numVFs": 16}


def test_plans_compare_by_what_they_run() -> None:
    assert plan_of([config()]) == plan_of([config()])
    assert plan_of([config()]) != plan_of([config(networking={"highSpeedMTU": 9000})])


def test_ready_summary_names_the_first_failing_condition() -> None:
    c = config()
    ok = [st.cond(c, t, True) for t in st.OWN_CONDITIONS[1:]]
    ready = st.summary(c, ok)
    assert ready.status == "True" and ready.observedGeneration == 3
    bad = st.cond(c, st.IMAGE_PULL_SECRETS_RECONCILED, False, st.REASON_ERROR, "secret x not found")
    ready = st.summary(c, [ok[2], ok[1], bad])
    assert ready.status == "False" and ready.reason == st.REASON_ERROR
    assert ready.message == "ImagePullSecretsReconciled: secret x not found"
    assert st.paused(c).reason == st.REASON_PAUSED and st.paused(c).status == "False"
