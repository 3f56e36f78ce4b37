"""The DPFOperatorConfig with a real controller replica, the emulated API and etcd: pause stops DPUSet changes from
reaching the intents and unpause lets them through; a disabled component's family leaves its objects alone; the
MTUs reach the intents' context; listed image pull Secrets get DPF's label and lose it when unlisted."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from controller_harness import NS, KubeEnv, dpuset_obj, intents, kube, node_obj, start_replica, store, wait_until

from controller.operatorconfig.plan import DPUSERVICES
from controller.operatorconfig.status import REASON_PAUSED
from dpfd.api.intents import ObjectRef
from dpfd.sim.argocd_crds import argocd_crds
from dpfd.store import Store
from dpfd.store import keys as store_keys

__all__ = ["kube", "store"]  # fixtures

OPERATOR = "operator.dpu.nvidia.com/v1alpha1"
SVC = "svc.dpu.nvidia.com/v1alpha1"
PULL_LABEL = "dpu.nvidia.com/image-pull-secret"
QUIET = 1.0  # how long something that must not happen is watched for, once the controller has seen its cause


@pytest.fixture(autouse=True)
async def argocd(kube: KubeEnv) -> None:
    """ArgoCD's kinds, where the system DPUServices' Applications and AppProjects go (no DPU cluster here: none
    needs an Application, so they are Ready once their AppProjects exist)."""
    await kube.server.register_crds(argocd_crds())


def config_obj(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": OPERATOR,
        "kind": "DPFOperatorConfig",
        "metadata": {"name": "dpfoperatorconfig", "namespace": NS},
        "spec": {"provisioningController": {"bfbPVCName": "bfb-pvc"}, **spec},
    }


def condition(kube: KubeEnv, type_: str) -> dict[str, Any] | None:
    config = kube.server.get_object(OPERATOR, "DPFOperatorConfig", "dpfoperatorconfig", NS) or {}
    for c in (config.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return None


async def stays(check: Any, what: str) -> None:
    """Assert `check()` holds throughout QUIET seconds (a window for something that must not happen)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + QUIET
    while loop.time() < end:
        assert check(), what
        await asyncio.sleep(0.05)


async def intent_of(store: Store, node: str, dpu: str) -> dict[str, Any] | None:
    raw = (await intents(store)).get(store_keys.intent_key(node, ObjectRef(kind="DPU", namespace=NS, name=dpu)))
    return json.loads(raw) if raw is not None else None


async def test_pause_holds_dpuset_changes_back_and_unpause_lets_them_through(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    await kube.server.apply_object(config_obj(networking={"highSpeedMTU": 9000, "controlPlaneMTU": 1400}))
    replica = await start_replica(kube, etcd_endpoints)
    dpu = "worker-0-0000-03-00"
    try:
        await kube.server.apply_object(dpuset_obj())
        intent = await wait_until(lambda: intent_of(store, "worker-0", dpu), what="the DPU's intent")
        assert intent["spec"]["cluster"]["nodeLabels"] == {"role": "worker"}
        assert intent["context"]["mtu"] == 9000 and intent["context"]["controlPlaneMTU"] == 1400
        # Ready once its system DPUServices are (no DPU cluster here: they have no Applications to wait for).
        await wait_until(lambda: (condition(kube, "Ready") or {}).get("status") == "True", what="Ready on the config")

        await kube.server.apply_object(config_obj(overrides={"paused": True}))
        ctl = replica.controller
        await wait_until(lambda: ctl.running_plan is not None and ctl.running_plan.paused, what="paused work")
        paused = await wait_until(
            lambda: (c := condition(kube, "Ready")) and c["reason"] == REASON_PAUSED and c, what="Ready: Paused"
        )
        assert paused["status"] == "False" and "paused" in paused["message"]

        await kube.server.apply_object(dpuset_obj(node_labels={"role": "edge"}))
        seen = replica.controller.dpusets
        await wait_until(
            lambda: (
                (seen.get(NS, "dpuset-a") or {})["spec"]["dpuTemplate"]["spec"]["cluster"]["nodeLabels"]
                == {"role": "edge"}
            ),
            what="the controller's cache holding the changed DPUSet",
        )
        loop = asyncio.get_running_loop()
        end = loop.time() + QUIET
        while loop.time() < end:  # a window for what must not happen
            held = await intent_of(store, "worker-0", dpu)
            assert held is not None and held["spec"]["cluster"]["nodeLabels"] == {"role": "worker"}, (
                "a paused controller changed an intent"
            )
            assert (kube.dpu(dpu) or {})["spec"]["cluster"]["nodeLabels"] == {"role": "worker"}
            await asyncio.sleep(0.05)

        await kube.server.apply_object(config_obj(overrides={"paused": False}))

        async def edge() -> bool:
            got = await intent_of(store, "worker-0", dpu)
            return got is not None and got["spec"]["cluster"]["nodeLabels"] == {"role": "edge"}

        await wait_until(edge, what="the DPUSet change reaching the intent after unpause")
        await wait_until(lambda: (condition(kube, "Ready") or {}).get("status") == "True", what="Ready again")
    finally:
        await replica.stop()


async def test_a_disabled_component_leaves_its_objects_untouched(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await kube.server.apply_object(config_obj(dpuServiceController={"disable": True}))
    replica = await start_replica(kube, etcd_endpoints)
    service = {
        "apiVersion": SVC,
        "kind": "DPUService",
        "metadata": {"name": "dummy", "namespace": NS},
        "spec": {"helmChart": {"source": {"repoURL": "oci://example.com/charts", "chart": "dummy", "version": "1"}}},
    }
    try:
        controller = replica.controller
        await wait_until(
            lambda: controller.running_plan is not None and DPUSERVICES not in controller.running_plan.families,
            what="the DPUService family off",
        )
        await kube.server.apply_object(service)
        await wait_until(lambda: controller.dpuservices.get(NS, "dummy"), what="the DPUService in the cache")
        await stays(
            lambda: not (kube.server.get_object(SVC, "DPUService", "dummy", NS) or {})["metadata"].get("finalizers"),
            "a disabled DPUService controller added its finalizer",
        )
        # The provisioning family still runs.
        await kube.server.apply_object(node_obj("worker-0"))
        await kube.server.apply_object(dpuset_obj())
        await wait_until(lambda: kube.dpus(), what="a DPU from the still-enabled provisioning controller")

        await kube.server.apply_object(config_obj(dpuServiceController={"disable": False}))
        await wait_until(
            lambda: (kube.server.get_object(SVC, "DPUService", "dummy", NS) or {})["metadata"].get("finalizers"),
            what="the re-enabled DPUService controller taking the DPUService",
        )
    finally:
        await replica.stop()


async def test_image_pull_secrets_are_labelled_for_mirroring(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    def secret(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        md: dict[str, Any] = {"name": name, "namespace": NS, "labels": labels or {}}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": md, "type": "kubernetes.io/dockerconfigjson",
                "data": {".dockerconfigjson": "e30="}}  # fmt: skip

    def labelled(name: str) -> bool:
        return PULL_LABEL in ((kube.server.get_object("v1", "Secret", name, NS) or {})["metadata"].get("labels") or {})

    await kube.server.apply_object(secret("regcred"))
    await kube.server.apply_object(secret("old-cred", {PULL_LABEL: ""}))
    await kube.server.apply_object(config_obj(imagePullSecrets=["regcred", "missing"]))
    replica = await start_replica(kube, etcd_endpoints)
    try:
        failed = await wait_until(
            lambda: (c := condition(kube, "ImagePullSecretsReconciled")) and c["status"] == "False" and c,
            what="ImagePullSecretsReconciled False for the missing Secret",
        )
        assert "missing" in failed["message"] and failed["reason"] == "Error"
        assert (condition(kube, "Ready") or {}).get("status") == "False"

        await kube.server.apply_object(secret("missing"))
        await wait_until(
            lambda: (condition(kube, "ImagePullSecretsReconciled") or {}).get("status") == "True",
            within=15,
            what="ImagePullSecretsReconciled True once the Secret exists",
        )
        assert labelled("regcred") and labelled("missing")
        assert not labelled("old-cred"), "a Secret no longer listed kept the label"
        assert (condition(kube, "SystemComponentsReconciled") or {}).get("status") == "True"
        # Ready once the system DPUServices are too (their AppProjects written: no DPU cluster needs more here).
        await wait_until(lambda: (condition(kube, "Ready") or {}).get("status") == "True", what="Ready")
    finally:
        await replica.stop()


async def test_system_dpuservices_follow_the_config(kube: KubeEnv, store: Store, etcd_endpoints: list[str]) -> None:
    """flannel, multus and sriov-device-plugin as DPUServices (the DPUService family takes them on); a disabled one
    is deleted, a component's helmChart replaces the release chart, and a malformed one is reported, not written."""

    def services() -> dict[str, dict[str, Any]]:
        return {s["metadata"]["name"]: s for s in kube.server.objects(SVC, "DPUService", NS)}

    await kube.server.apply_object(config_obj())
    replica = await start_replica(kube, etcd_endpoints)
    try:
        await wait_until(lambda: set(services()) == {"flannel", "multus", "sriov-device-plugin"},
                         what="the three system DPUServices")  # fmt: skip
        for name, svc in services().items():
            assert svc["metadata"]["labels"]["dpu.nvidia.com/component"] == name
            assert svc["spec"]["helmChart"]["source"]["chart"] == "dpu-networking"
            assert svc["spec"]["helmChart"]["values"][name] == {"enabled": True}
        # The DPUService family takes them on (its finalizer), and the config is Ready once they are.
        await wait_until(lambda: all(s["metadata"].get("finalizers") for s in services().values()),
                         what="the DPUService family's finalizers")  # fmt: skip
        await wait_until(lambda: (condition(kube, "SystemComponentsReady") or {}).get("status") == "True",
                         what="SystemComponentsReady")  # fmt: skip

        chart = "oci://registry.example.com/charts/flannel:v0.26.0"
        await kube.server.apply_object(config_obj(multus={"disable": True}, flannel={"helmChart": chart}))
        await wait_until(lambda: "multus" not in services(), what="the disabled multus DPUService deleted")
        await wait_until(
            lambda: (
                services()["flannel"]["spec"]["helmChart"]["source"]
                == {"repoURL": "oci://registry.example.com/charts", "chart": "flannel", "version": "v0.26.0"}
            ),
            what="flannel on its own chart",
        )
        assert services()["flannel"]["spec"]["helmChart"]["values"]["podCidr"] == "10.36.0.0/16"

        await kube.server.apply_object(config_obj(flannel={"helmChart": "flannel-latest"}))
        failed = await wait_until(
            lambda: (c := condition(kube, "SystemComponentsReconciled")) and c["status"] == "False" and c,
            what="SystemComponentsReconciled False for the malformed chart",
        )
        assert "spec.flannel.helmChart" in failed["message"] and "invalid format flannel-latest" in failed["message"]
        assert (condition(kube, "Ready") or {}).get("status") == "False"
        assert "multus" not in services()  # nothing written from a config that could not be read whole
    finally:
        await replica.stop()
