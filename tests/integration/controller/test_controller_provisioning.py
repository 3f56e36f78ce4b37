"""The controller against the emulated Kubernetes API and a real etcd: DPUSet → DPUs → intents → status."""

from __future__ import annotations

import json

from controller_harness import (
    NS,
    KubeEnv,
    dpuset_obj,
    intents,
    kube,
    node_obj,
    start_replica,
    store,
    wait_until,
    write_report,
)

from controller.manager import ControllerOptions
from dpfd.api.conditions import Condition
from dpfd.api.intents import ObjectRef
from dpfd.store import Store
from dpfd.store import keys as store_keys

__all__ = ["kube", "store"]  # fixtures

DPU_FINALIZER = "provisioning.dpu.nvidia.com/dpu-protection"


def intent_key(node: str, dpu_name: str) -> str:
    return store_keys.intent_key(node, ObjectRef(kind="DPU", namespace=NS, name=dpu_name))


async def test_dpuset_makes_dpf_dpus_and_intents(kube: KubeEnv, store: Store, etcd_endpoints: list[str]) -> None:
    for i, ip in enumerate(["10.0.0.11", "10.0.0.12", "10.0.0.13"]):
        await kube.server.apply_object(node_obj(f"worker-{i}", ip=ip, enabled=i != 2))
    replica = await start_replica(kube, etcd_endpoints, options=ControllerOptions(events=True))
    try:
        await kube.server.apply_object(dpuset_obj())
        await wait_until(lambda: len(kube.dpus()) == 2, what="two DPUs")
        dpuset = kube.dpuset("dpuset-a")
        assert dpuset is not None
        assert "provisioning.dpu.nvidia.com/dpuset-protection" in dpuset["metadata"]["finalizers"]
        dpu = kube.dpu("worker-0-0000-03-00")
        assert dpu is not None
        assert dpu["metadata"]["labels"] == {
            "provisioning.dpu.nvidia.com/dpuset-name": "dpuset-a",
            "provisioning.dpu.nvidia.com/dpuset-namespace": NS,
            "provisioning.dpu.nvidia.com/dpu-pciAddress": "0000-03-00",
            "provisioning.dpu.nvidia.com/dpu-pf-name": "ens1f0np0",
            "provisioning.dpu.nvidia.com/dpu-host-ip": "10.0.0.11",
        }
        assert dpu["metadata"]["annotations"] == {"example.com/note": "from-template"}
        [owner] = dpu["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
            "kind": "DPUSet",
            "name": "dpuset-a",
            "uid": dpuset["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert dpu["metadata"]["finalizers"] == [DPU_FINALIZER]
        assert dpu["spec"]["nodeName"] == "worker-0" and dpu["spec"]["bfb"] == "bf-bundle"
        assert dpu["spec"]["dpuFlavor"] == "dpf-provisioning-hbn"
        assert dpu["spec"]["cluster"]["nodeLabels"] == {"role": "worker"}

        got = await wait_until(lambda: _intents_if(store, 2), what="two intents in etcd")
        intent = json.loads(got[intent_key("worker-0", "worker-0-0000-03-00")])
        assert intent["node"] == "worker-0" and intent["uid"] == dpu["metadata"]["uid"]
        assert intent["generation"] == dpu["metadata"]["generation"]
        assert intent["spec"] == dpu["spec"] and intent["deleting"] is False
        assert intent["labels"]["provisioning.dpu.nvidia.com/dpuset-name"] == "dpuset-a"

        await wait_until(lambda: _stats(kube) == {"Initializing": 2}, what="dpuStatistics")

        def create_event() -> str | None:
            for ev in kube.server.objects("v1", "Event", NS):
                if ev["reason"] == "SuccessfulCreate" and ev["involvedObject"]["name"] == "dpuset-a":
                    return str(ev["message"])
            return None

        message = await wait_until(create_event, what="an Event about the created DPUs")
        assert message == "Created 2 DPU(s): worker-0-0000-03-00, worker-1-0000-03-00"
    finally:
        await replica.stop()


async def test_reports_become_dpu_status(kube: KubeEnv, store: Store, etcd_endpoints: list[str]) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    replica = await start_replica(kube, etcd_endpoints)
    try:
        await kube.server.apply_object(dpuset_obj())
        dpu = await wait_until(lambda: kube.dpu("worker-0-0000-03-00"), what="DPU")
        cond = Condition(type="OSInstalled", status="False", reason="Installing", observedGeneration=1)
        await write_report(
            store,
            "worker-0",
            dpu,
            observedGeneration=1,
            phase="OS Installing",
            conditions=[cond],
            fencingToken=10,
        )
        st = await wait_until(lambda: _status_phase(kube, "OS Installing"), what="phase OS Installing")
        assert st["observedGeneration"] == 1
        assert st["conditions"] == [cond.model_dump(mode="json", exclude_none=True)]
        await wait_until(lambda: _stats(kube) == {"OS Installing": 1}, what="statistics follow the phase")

        # A report under an older fencing token comes from a holder that lost its lock: ignored.
        await write_report(store, "worker-0", dpu, observedGeneration=1, phase="Error", fencingToken=9)
        # A report for another incarnation of the object (uid mismatch): ignored.
        await write_report(
            store, "worker-0", dpu, observedGeneration=1, phase="Error", fencingToken=11, uid="someone-else"
        )
        # The next good report is applied, proving the two above were seen and skipped.
        await write_report(store, "worker-0", dpu, observedGeneration=1, phase="Ready", fencingToken=12)
        await wait_until(lambda: _status_phase(kube, "Ready"), what="phase Ready")
        assert replica.controller.reports.stale_ignored >= 1
        await wait_until(lambda: _stats(kube) == {"Ready": 1}, what="statistics Ready")
    finally:
        await replica.stop()


async def test_unselected_node_without_dpfd_loses_its_dpu(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    await kube.server.apply_object(node_obj("worker-1"))
    replica = await start_replica(kube, etcd_endpoints)
    try:
        await kube.server.apply_object(dpuset_obj())
        await wait_until(lambda: _intents_if(store, 2), what="two intents")
        await kube.server.apply_object(node_obj("worker-1", enabled=False))
        # No /dpf/v1/members/worker-1: nobody to release it, so the finalizer goes and the DPU with it.
        await wait_until(lambda: kube.dpu("worker-1-0000-03-00") is None, what="DPU of worker-1 deleted")
        got = await wait_until(lambda: _intents_if(store, 1), what="its intent deleted")
        assert list(got) == [intent_key("worker-0", "worker-0-0000-03-00")]
        assert kube.dpu("worker-0-0000-03-00") is not None
    finally:
        await replica.stop()


async def test_dpu_deletion_waits_for_the_node_to_release_it(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    await store.put(store_keys.member_key("worker-0"), '{"role": "host"}')
    replica = await start_replica(kube, etcd_endpoints)
    try:
        await kube.server.apply_object(dpuset_obj())
        dpu = await wait_until(lambda: kube.dpu("worker-0-0000-03-00"), what="DPU")
        await wait_until(lambda: _intents_if(store, 1), what="intent")
        await kube.server.apply_object(node_obj("worker-0", enabled=False))
        key = intent_key("worker-0", "worker-0-0000-03-00")
        await wait_until(lambda: _intent_deleting(store, key), what="intent marked deleting")
        # Still held: the node's dpfd has not released it yet.
        held = kube.dpu("worker-0-0000-03-00")
        assert held is not None and held["metadata"].get("deletionTimestamp")
        assert held["metadata"]["finalizers"] == [DPU_FINALIZER]
        await write_report(
            store,
            "worker-0",
            dpu,
            observedGeneration=1,
            phase="Deleting",
            details={"released": True},
            fencingToken=5,
        )
        await wait_until(lambda: kube.dpu("worker-0-0000-03-00") is None, what="DPU gone after release")
        await wait_until(lambda: _intents_if(store, 0), what="intent deleted")
    finally:
        await replica.stop()


async def test_template_node_labels_are_patched_into_dpus(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    replica = await start_replica(kube, etcd_endpoints)
    try:
        await kube.server.apply_object(dpuset_obj())
        await wait_until(lambda: kube.dpu("worker-0-0000-03-00"), what="DPU")
        await kube.server.apply_object(dpuset_obj(node_labels={"role": "edge", "zone": "a"}))
        key = intent_key("worker-0", "worker-0-0000-03-00")

        async def labels_in_intent() -> bool:
            got = await intents(store)
            return key in got and json.loads(got[key])["spec"]["cluster"]["nodeLabels"] == {
                "role": "edge",
                "zone": "a",
            }

        await wait_until(labels_in_intent, what="new nodeLabels in the DPU's intent")
        dpu = kube.dpu("worker-0-0000-03-00")
        assert dpu is not None and dpu["spec"]["cluster"]["nodeLabels"] == {"role": "edge", "zone": "a"}
    finally:
        await replica.stop()


async def test_dpuset_deletion_removes_its_finalizer_and_dpus_follow(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    replica = await start_replica(kube, etcd_endpoints)
    try:
        await kube.server.apply_object(dpuset_obj())
        await wait_until(lambda: _intents_if(store, 1), what="intent")
        await kube.server.delete_object("provisioning.dpu.nvidia.com/v1alpha1", "DPUSet", "dpuset-a", NS)
        await wait_until(lambda: kube.dpuset("dpuset-a") is None, what="DPUSet gone")
        await wait_until(lambda: not kube.dpus(), what="its DPU garbage-collected and released")
        await wait_until(lambda: _intents_if(store, 0), what="intent deleted")
    finally:
        await replica.stop()


def _stats(kube: KubeEnv) -> dict[str, int] | None:
    ds = kube.dpuset("dpuset-a")
    return None if ds is None else (ds.get("status") or {}).get("dpuStatistics")


def _status_phase(kube: KubeEnv, phase: str) -> dict[str, object] | None:
    dpu = kube.dpu("worker-0-0000-03-00")
    st = (dpu or {}).get("status") or {}
    return st if st.get("phase") == phase else None


async def _intents_if(store: Store, n: int) -> dict[str, bytes] | bool:
    """The DPU intents in etcd once there are exactly `n` of them (True for zero), else False. (Host members
    also get Host intents: see test_controller_context*.)"""
    got = {k: v for k, v in (await intents(store)).items() if "/DPU/" in k}
    if len(got) == n:
        return got or True
    return False


async def _intent_deleting(store: Store, key: str) -> bool:
    got = await intents(store)
    return key in got and json.loads(got[key])["deleting"] is True
