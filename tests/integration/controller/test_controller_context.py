"""The controller's provisioning context against the emulated Kubernetes API and a real etcd, the test playing the
hosts' dpfd (member keys and reports written with the store API): the DPU intents' context, DPUCluster
assignment, BFB intents and status, Node labels from host discovery, and node effects applied and reverted."""

from __future__ import annotations

import json
from typing import Any

from controller_harness import (
    NFD,
    NS,
    PROV,
    KubeEnv,
    dpuset_obj,
    kube,
    node_obj,
    start_replica,
    store,
    wait_until,
    write_report,
)

from controller.manager import ControllerOptions
from controller.nodeeffect import ANNOTATION as NODE_EFFECT_ANNOTATION
from controller.nodeeffect import NodeEffectOptions
from dpfd.api.conditions import Condition
from dpfd.api.intents import ObjectRef, Report
from dpfd.store import Store
from dpfd.store import keys as store_keys

__all__ = ["kube", "store"]  # fixtures

DPU_NAME = "worker-0-0000-03-00"
BFB_URL = "http://127.0.0.1:9/bf-bundle.bfb"
# The test sets DPUCluster status itself: no DPU cluster access (test_controller_context_cluster.py has it).
FAST = ControllerOptions(
    events=False, node_effects=NodeEffectOptions(backoff_initial=0.05, backoff_max=0.2), dpu_clusters=False
)


# -- helpers -----------------------------------------------------------------------------------------


async def register(store: Store, node: str, role: str = "host") -> None:
    await store.put(store_keys.member_key(node), json.dumps({"node": node, "role": role}))


async def read_intent(store: Store, node: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    kv = await store.get(store_keys.intent_key(node, ObjectRef(kind=kind, namespace=namespace, name=name)))
    return json.loads(kv.value) if kv is not None else None


async def dpu_context(store: Store, name: str = DPU_NAME, node: str = "worker-0") -> dict[str, Any]:
    intent = await read_intent(store, node, "DPU", NS, name)
    return intent["context"] if intent is not None else {}


async def report(store: Store, node: str, kind: str, namespace: str, name: str, uid: str, **fields: Any) -> None:
    ref = ObjectRef(kind=kind, namespace=namespace, name=name)
    r = Report(node=node, ref=ref, uid=uid, observedGeneration=fields.pop("observedGeneration", 1), **fields)
    await store.put(store_keys.report_key(node, ref), r.model_dump_json())


def bfb_obj(name: str = "bf-bundle", url: str = BFB_URL) -> dict[str, Any]:
    return {"apiVersion": PROV, "kind": "BFB", "metadata": {"name": name, "namespace": NS}, "spec": {"url": url}}


def flavor_obj(name: str = "dpf-provisioning-hbn") -> dict[str, Any]:
    return {
        "apiVersion": PROV,
        "kind": "DPUFlavor",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "grub": {"kernelParameters": ["console=hvc0"]},
            "nvconfig": [{"device": "*", "parameters": ["PF_TOTAL_SF=20", "NUM_OF_VFS=8"]}],
        },
    }


async def add_cluster(kube: KubeEnv, name: str, phase: str | None, max_nodes: int = 1000) -> None:
    await kube.server.apply_object(
        {
            "apiVersion": PROV,
            "kind": "DPUCluster",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"type": "static", "version": "v1.30.0", "kubeconfig": f"{name}-admin", "maxNodes": max_nodes},
        }
    )
    if phase is not None:
        await set_cluster_phase(kube, name, phase)


async def set_cluster_phase(kube: KubeEnv, name: str, phase: str) -> None:
    await kube.server.apply_status(
        {
            "apiVersion": PROV,
            "kind": "DPUCluster",
            "metadata": {"name": name, "namespace": NS},
            "status": {"phase": phase},
        }
    )


def obj(kube: KubeEnv, kind: str, name: str, namespace: str | None = NS) -> dict[str, Any]:
    api = "v1" if kind in ("Node", "Pod") else PROV
    found = kube.server.get_object(api, kind, name, namespace)
    assert found is not None, f"{kind} {name} is missing"
    return found


def node_meta(kube: KubeEnv, node: str = "worker-0") -> dict[str, Any]:
    return dict(obj(kube, "Node", node, None)["metadata"])


def bfb_status(kube: KubeEnv, name: str = "bf-bundle") -> dict[str, Any]:
    found = kube.server.get_object(PROV, "BFB", name, NS)
    return dict((found or {}).get("status") or {})


# -- the DPU intent's context ------------------------------------------------------------------------


async def test_dpu_intent_context_is_resolved_and_follows_changes(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    node = node_obj("worker-0")
    node["metadata"]["annotations"] = {"provisioning.dpu.nvidia.com/reboot-command": "skip"}
    await kube.server.apply_object(node)
    await kube.server.apply_object(bfb_obj())
    await kube.server.apply_object(flavor_obj())
    await add_cluster(kube, "dc0", "NotReady")
    replica = await start_replica(kube, etcd_endpoints, options=FAST)
    try:
        await kube.server.apply_object(dpuset_obj())

        def resolved(ctx: dict[str, Any]) -> bool:
            return {"bfb", "flavor", "hostAnnotations"} <= ctx.keys()

        ctx = await wait_until(lambda: _when(dpu_context(store), resolved), what="context with BFB, flavor, host")
        assert ctx["bfb"] == {"name": "bf-bundle", "url": BFB_URL, "fileName": f"{NS}-bf-bundle.bfb",
                              "phase": "Initializing"}  # fmt: skip
        assert ctx["flavor"]["grub"] == {"kernelParameters": ["console=hvc0"]}
        assert ctx["numVFs"] == 8
        assert ctx["hostAnnotations"] == {"provisioning.dpu.nvidia.com/reboot-command": "skip"}
        # No DPUCluster is Ready: the DPU stays unassigned (its intent is published all the same).
        assert "cluster" not in ctx
        assert not (obj(kube, "DPU", DPU_NAME)["spec"].get("cluster") or {}).get("name")

        await add_cluster(kube, "dc1", "Ready")
        await wait_until(
            lambda: (obj(kube, "DPU", DPU_NAME)["spec"].get("cluster") or {}).get("name") == "dc1",
            what="DPU assigned to the Ready DPUCluster dc1",
        )
        spec_cluster = obj(kube, "DPU", DPU_NAME)["spec"]["cluster"]
        assert spec_cluster == {"name": "dc1", "namespace": NS, "nodeLabels": {"role": "worker"}}
        ctx = await wait_until(lambda: _when(dpu_context(store), lambda c: "cluster" in c), what="cluster in context")
        assert ctx["cluster"] == {"name": "dc1", "namespace": NS}  # no join command without DPU cluster access

        node["metadata"]["annotations"] = {"provisioning.dpu.nvidia.com/reboot-command": "reset"}
        await kube.server.apply_object(node)
        await wait_until(
            lambda: _when(dpu_context(store), lambda c: c["hostAnnotations"].get(
                "provisioning.dpu.nvidia.com/reboot-command") == "reset"),
            what="host annotation change re-published",
        )  # fmt: skip

        # The BFB turning Ready on the host reaches the context.
        await register(store, "worker-0")
        bfb_uid = obj(kube, "BFB", "bf-bundle")["metadata"]["uid"]
        await report(store, "worker-0", "BFB", NS, "bf-bundle", bfb_uid, phase="Ready")
        await wait_until(
            lambda: _when(dpu_context(store), lambda c: c["bfb"]["phase"] == "Ready"), what="BFB phase Ready in context"
        )
    finally:
        await replica.stop()


async def test_allocation_packs_dpus_and_respects_max_nodes(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    for i in range(3):
        await kube.server.apply_object(node_obj(f"worker-{i}", ip=f"10.0.0.{i + 1}"))
    await add_cluster(kube, "dc-a", "Ready", max_nodes=2)
    await add_cluster(kube, "dc-b", "Ready", max_nodes=10)
    replica = await start_replica(kube, etcd_endpoints, options=FAST)
    try:
        await kube.server.apply_object(dpuset_obj())

        def assigned() -> dict[str, str] | None:
            got = {d["metadata"]["name"]: (d["spec"].get("cluster") or {}).get("name") for d in kube.dpus()}
            return got if len(got) == 3 and all(got.values()) else None

        got = await wait_until(assigned, what="three DPUs assigned")
        counts = {c: list(got.values()).count(c) for c in set(got.values())}
        assert counts == {"dc-a": 2, "dc-b": 1}, got  # DPF packs: the fuller cluster first, never over maxNodes
    finally:
        await replica.stop()


async def _when(ctx_coro: Any, pred: Any) -> Any:
    ctx = await ctx_coro
    try:
        return ctx if pred(ctx) else None
    except (KeyError, TypeError):
        return None


# -- BFB intents and status --------------------------------------------------------------------------


async def test_bfb_goes_to_every_host_and_its_status_aggregates_their_reports(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await register(store, "h1")
    await register(store, "h2")
    await register(store, "h1-0000-03-00", role="dpu")  # a DPU's dpfd downloads no BFBs
    replica = await start_replica(kube, etcd_endpoints, options=FAST)
    try:
        await kube.server.apply_object(bfb_obj())
        for host in ("h1", "h2"):
            intent = await wait_until(
                lambda h=host: read_intent(store, h, "BFB", NS, "bf-bundle"), what=f"intent {host}"
            )
            assert intent["spec"] == {"url": BFB_URL, "fileName": f"{NS}-bf-bundle.bfb"}
        assert await read_intent(store, "h1-0000-03-00", "BFB", NS, "bf-bundle") is None
        bfb = obj(kube, "BFB", "bf-bundle")
        uid = bfb["metadata"]["uid"]
        assert "provisioning.dpu.nvidia.com/bfb-protection" in bfb["metadata"]["finalizers"]
        st = await wait_until(lambda: bfb_status(kube).get("phase") == "Initializing" and bfb_status(kube),
                              what="Initializing")  # fmt: skip
        assert st["fileName"] == f"{NS}-bf-bundle.bfb"

        progress = {"progress": {"downloaded": 512, "size": 1024}}
        await report(store, "h1", "BFB", NS, "bf-bundle", uid, phase="Downloading", details=progress)
        await wait_until(lambda: bfb_status(kube).get("phase") == "Downloading", what="Downloading")
        [cond] = bfb_status(kube)["conditions"]
        assert cond["message"] == "downloaded on 0 of 2 host(s); downloading on h1 50%; waiting for h2"

        failed = Condition(type="Ready", status="False", reason="DNSFailure",
                           message="cannot resolve 127.0.0.1.invalid")  # fmt: skip
        await report(store, "h2", "BFB", NS, "bf-bundle", uid, phase="Error", conditions=[failed])
        await report(store, "h1", "BFB", NS, "bf-bundle", uid, phase="Ready")
        await wait_until(lambda: bfb_status(kube).get("phase") == "Error", what="Error")
        [cond] = bfb_status(kube)["conditions"]
        assert (cond["status"], cond["reason"]) == ("False", "DNSFailure")
        assert cond["message"] == "download failed on 1 of 2 host(s): h2: DNSFailure: cannot resolve 127.0.0.1.invalid"

        await report(store, "h2", "BFB", NS, "bf-bundle", uid, phase="Ready")
        await wait_until(lambda: bfb_status(kube).get("phase") == "Ready", what="Ready")
        [cond] = bfb_status(kube)["conditions"]
        assert (cond["status"], cond["reason"], cond["message"]) == ("True", "Downloaded", "downloaded on 2 host(s)")

        # A third host joins: the BFB goes to it too, and is not Ready until it has it.
        await register(store, "h3")
        await wait_until(lambda: read_intent(store, "h3", "BFB", NS, "bf-bundle"), what="intent for h3")
        await wait_until(lambda: bfb_status(kube).get("phase") == "Downloading", what="Downloading for h3")

        # h3's dpfd goes away and it has no Node: it is gone for good, so the BFB is no longer waiting for it.
        await store.delete(store_keys.member_key("h3"))
        await wait_until(lambda: bfb_status(kube).get("phase") == "Ready", what="Ready without h3")

        # Its intent goes too (status and intent are written by separate steps: wait for each).
        async def h3_intent_gone() -> bool:
            return await read_intent(store, "h3", "BFB", NS, "bf-bundle") is None

        await wait_until(h3_intent_gone, what="h3's BFB intent removed")
    finally:
        await replica.stop()


async def test_bfb_deletion_waits_for_its_dpus(kube: KubeEnv, store: Store, etcd_endpoints: list[str]) -> None:
    await register(store, "h1")
    await kube.server.apply_object(bfb_obj())
    await kube.server.apply_object(
        {"apiVersion": PROV, "kind": "DPU", "metadata": {"name": "h9-0000-03-00", "namespace": NS},
         "spec": {"nodeName": "h9", "bfb": "bf-bundle", "dpuFlavor": "f", "nodeEffect": {"noEffect": True}}}
    )  # fmt: skip
    replica = await start_replica(kube, etcd_endpoints, options=FAST)
    try:
        await wait_until(lambda: read_intent(store, "h1", "BFB", NS, "bf-bundle"), what="BFB intent")
        await wait_until(
            lambda: "provisioning.dpu.nvidia.com/bfb-protection" in (obj(kube, "BFB", "bf-bundle")["metadata"].get(
                "finalizers") or []), what="finalizer")  # fmt: skip
        await kube.server.delete_object(PROV, "BFB", "bf-bundle", NS)
        await wait_until(lambda: bfb_status(kube).get("phase") == "Deleting", what="Deleting")
        assert bfb_status(kube)["conditions"][0]["message"] == "deletion waits: still used by DPU h9-0000-03-00"
        assert await read_intent(store, "h1", "BFB", NS, "bf-bundle") is None  # hosts may drop the image
        # Node h9 has no dpfd: the DPU goes at once, and the BFB after it.
        await kube.server.delete_object(PROV, "DPU", "h9-0000-03-00", NS)
        await wait_until(lambda: kube.server.get_object(PROV, "BFB", "bf-bundle", NS) is None, what="BFB gone")
    finally:
        await replica.stop()


# -- host discovery ----------------------------------------------------------------------------------


async def test_host_report_sets_dpf_discovery_labels_on_its_node(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await kube.server.apply_object(
        {"apiVersion": "v1", "kind": "Node",
         "metadata": {"name": "h1", "labels": {"team": "a", f"{NFD}dpu-1-pci-address": "0000-04-00",
                                                f"{NFD}cpu-model": "x"}}}
    )  # fmt: skip
    await register(store, "h1")
    replica = await start_replica(kube, etcd_endpoints, options=FAST)
    try:
        intent = await wait_until(lambda: read_intent(store, "h1", "Host", "_", "h1"), what="Host intent")
        uid = node_meta(kube, "h1")["uid"]
        assert intent["uid"] == uid and intent["spec"] == {}
        labels = {
            f"{NFD}dpu-enabled": "true",
            f"{NFD}dpu-0-pci-address": "0000-03-00",
            f"{NFD}dpu-0-pf0-name": "ens1f0np0",
            f"{NFD}dpu-oob-bridge-configured": "",
            "team": "taken-over",  # not a discovery label: never taken from a host
        }
        dpus = [{"pciAddress": "0000-03-00", "pf0Name": "ens1f0np0", "deviceId": "0xa2dc"}]
        await report(store, "h1", "Host", "_", "h1", uid, phase="Ready", details={"labels": labels, "dpus": dpus})
        want = {
            "team": "a",
            f"{NFD}cpu-model": "x",
            f"{NFD}dpu-enabled": "true",
            f"{NFD}dpu-0-pci-address": "0000-03-00",
            f"{NFD}dpu-0-pf0-name": "ens1f0np0",
            f"{NFD}dpu-oob-bridge-configured": "",
        }
        await wait_until(lambda: node_meta(kube, "h1").get("labels") == want, what="discovery labels on the Node")

        # The bridge lost its address: the label goes, nothing else changes.
        del labels[f"{NFD}dpu-oob-bridge-configured"]
        await report(store, "h1", "Host", "_", "h1", uid, phase="Ready", details={"labels": labels})
        del want[f"{NFD}dpu-oob-bridge-configured"]
        await wait_until(lambda: node_meta(kube, "h1").get("labels") == want, what="stale discovery label removed")
    finally:
        await replica.stop()


# -- node effects ------------------------------------------------------------------------------------


async def add_pod(kube: KubeEnv, name: str, node: str, app: str) -> None:
    meta = {"name": name, "namespace": "default", "labels": {"app": app}}
    await kube.server.apply_object(
        {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"nodeName": node, "containers": [{"name": "c"}]}}
    )
    status = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    await kube.server.apply_status({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "status": status})


def pods(kube: KubeEnv) -> list[str]:
    return sorted(p["metadata"]["name"] for p in kube.server.objects("v1", "Pod", "default"))


async def test_drain_is_applied_through_a_budget_and_reverted_at_ready(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    await kube.server.apply_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "other"}})
    await register(store, "worker-0")
    await add_pod(kube, "web-1", "worker-0", "web")
    await kube.server.apply_object(
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web", "namespace": "default"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}}
    )  # fmt: skip
    replica = await start_replica(kube, etcd_endpoints, options=FAST)
    try:
        await kube.server.apply_object(dpuset_obj())  # nodeEffect: drain
        dpu = await wait_until(lambda: kube.dpu(DPU_NAME), what="DPU")
        drain = {"drain": {"automaticNodeReboot": True}}
        await write_report(store, "worker-0", dpu, observedGeneration=1, phase="Node Effect", fencingToken=1,
                           details={"nodeEffect": {"request": "apply", "effect": drain}})  # fmt: skip

        def answer() -> Any:
            return dpu_context(store)

        ctx = await wait_until(
            lambda: _when(answer(), lambda c: "PodDisruptionBudget" in c["nodeEffect"]["message"]),
            what="the answer names the blocking budget",
        )
        assert ctx["nodeEffect"]["applied"] is False
        assert "blocked by PodDisruptionBudget default/web" in ctx["nodeEffect"]["message"]
        assert obj(kube, "Node", "worker-0", None)["spec"].get("unschedulable") is True
        assert pods(kube) == ["web-1"]

        await add_pod(kube, "web-2", "other", "web")  # the budget now allows one disruption
        ctx = await wait_until(lambda: _when(answer(), lambda c: c["nodeEffect"]["applied"]), what="drained")
        assert ctx["nodeEffect"]["message"] == "Node worker-0: node effect drained"
        assert pods(kube) == ["web-2"]
        holds = json.loads(node_meta(kube)["annotations"][NODE_EFFECT_ANNOTATION])
        assert list(holds["cordon"]["owners"]) == [f"{NS}/{DPU_NAME}"]

        await write_report(store, "worker-0", dpu, observedGeneration=1, phase="Ready", fencingToken=1,
                           details={"nodeEffect": {"request": "revert", "effect": drain}})  # fmt: skip
        await wait_until(lambda: not obj(kube, "Node", "worker-0", None)["spec"].get("unschedulable"), what="uncordon")
        assert NODE_EFFECT_ANNOTATION not in (node_meta(kube).get("annotations") or {})
        ctx = await wait_until(lambda: _when(answer(), lambda c: not c["nodeEffect"]["applied"]), what="answer")
        assert ctx["nodeEffect"]["message"] == "node effect reverted"
    finally:
        await replica.stop()


async def test_a_taint_shared_by_two_dpus_goes_with_the_last_one(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    await kube.server.apply_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "h1"}})
    await register(store, "h1")
    taint = {"taint": {"key": "dpu.nvidia.com/flashing", "value": "true", "effect": "NoSchedule"}}
    for pci in ("0000-03-00", "0000-04-00"):
        await kube.server.apply_object(
            {"apiVersion": PROV, "kind": "DPU", "metadata": {"name": f"h1-{pci}", "namespace": NS},
             "spec": {"nodeName": "h1", "bfb": "bf", "dpuFlavor": "f", "pciAddress": pci, "nodeEffect": taint}}
        )  # fmt: skip
    replica = await start_replica(kube, etcd_endpoints, options=FAST)
    try:
        a, b = obj(kube, "DPU", "h1-0000-03-00"), obj(kube, "DPU", "h1-0000-04-00")
        for d in (a, b):
            await write_report(store, "h1", d, observedGeneration=1, phase="Node Effect", fencingToken=1,
                               details={"nodeEffect": {"request": "apply", "effect": taint}})  # fmt: skip
        for name in ("h1-0000-03-00", "h1-0000-04-00"):
            await wait_until(
                lambda n=name: _when(dpu_context(store, n, "h1"), lambda c: c["nodeEffect"]["applied"]),
                what=f"{name} applied",
            )

        def taints() -> list[str]:
            return [t["key"] for t in obj(kube, "Node", "h1", None)["spec"].get("taints") or []]

        assert taints() == ["dpu.nvidia.com/flashing"]
        await write_report(store, "h1", a, observedGeneration=1, phase="Ready", fencingToken=1)
        await wait_until(
            lambda: _when(dpu_context(store, "h1-0000-03-00", "h1"), lambda c: not c["nodeEffect"]["applied"]),
            what="A let go",
        )
        assert taints() == ["dpu.nvidia.com/flashing"]  # B still holds it
        await kube.server.delete_object(PROV, "DPU", "h1-0000-04-00", NS)  # deletion reverts B's hold
        await wait_until(lambda: taints() == [], what="taint removed with the last owner")
        assert NODE_EFFECT_ANNOTATION not in (node_meta(kube, "h1").get("annotations") or {})
    finally:
        await replica.stop()
