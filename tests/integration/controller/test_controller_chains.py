"""The chaining fan-out with a real host API, a real TLS DPU cluster and real etcd; the test plays the DPUs' dpfds
(registers members, writes reports). DPUServiceInterface / DPUServiceChain become per-DPU intents
`<set>-<node>` for exactly the DPU Nodes selected (clusterSelector on DPUCluster labels, nodeSelector on the
DPU cluster's Node labels) whose DPU dpfd is a member; they follow label and membership changes, the status
counts the dpfds' reports, and deletion waits for the dpfds to release their children (DPF's finalizer)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
import yaml
from controller_harness import NS, PROV, KubeEnv, kube, start_replica, store, wait_until

from controller.manager import ControllerOptions
from dpfd.api.conditions import Condition
from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.tls import ensure_tls
from dpfd.store import Store
from dpfd.store import keys as store_keys

__all__ = ["kube", "store"]  # fixtures

SVC = "svc.dpu.nvidia.com/v1alpha1"


@pytest_asyncio.fixture
async def dpu_cluster(tmp_path: Path) -> AsyncIterator[KubeApiServer]:
    server = KubeApiServer(tls=ensure_tls(tmp_path / "pki"), bookmark_interval=0.2)
    await server.start()
    yield server
    await server.stop()


async def add_cluster(kube: KubeEnv, dpu_cluster: KubeApiServer, name: str, labels: dict[str, str]) -> None:
    admin = yaml.safe_dump(dpu_cluster.kubeconfig()).encode()
    await kube.server.apply_object(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-admin", "namespace": NS},
         "data": {"admin.conf": base64.b64encode(admin).decode()}}
    )  # fmt: skip
    await kube.server.apply_object(
        {"apiVersion": PROV, "kind": "DPUCluster", "metadata": {"name": name, "namespace": NS, "labels": labels},
         "spec": {"type": "static", "version": "v1.30.0", "kubeconfig": f"{name}-admin"}}
    )  # fmt: skip


async def dpu_node(cluster: KubeApiServer, name: str, **labels: str) -> None:
    await cluster.apply_object({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})


async def member(store: Store, node: str, role: str = "dpu") -> None:
    await store.put(store_keys.member_key(node), json.dumps({"role": role}))


async def child_intents(store: Store, kind: str) -> dict[str, Intent]:
    """The intents of `kind`, by "<node> <name>"."""
    kvs, _ = await store.get_prefix(store_keys.intents_prefix())
    found = (Intent.model_validate_json(kv.value) for kv in kvs)
    return {f"{i.node} {i.ref.name}": i for i in found if i.ref.kind == kind}


async def report(store: Store, intent: Intent, *, ready: bool = True, phase: str = "Ready") -> None:
    cond = Condition(
        type="Ready", status="True" if ready else "False", reason=phase, message="" if ready else "no port"
    )
    r = Report(node=intent.node, ref=intent.ref, uid=intent.uid, observedGeneration=intent.generation, phase=phase,
               conditions=[cond], fencingToken=1)  # fmt: skip
    await store.put(store_keys.report_key(intent.node, intent.ref), r.model_dump_json())


def interface_obj(
    name: str, cluster_selector: dict[str, Any] | None, node_selector: dict[str, Any] | None
) -> dict[str, Any]:
    set_spec: dict[str, Any] = {
        "template": {"metadata": {"labels": {"svc.dpu.nvidia.com/interface": name}},
                     "spec": {"interfaceType": "physical", "physical": {"interfaceName": name}}},
    }  # fmt: skip
    if node_selector is not None:
        set_spec["nodeSelector"] = node_selector
    spec: dict[str, Any] = {"template": {"spec": set_spec}}
    if cluster_selector is not None:
        spec["clusterSelector"] = cluster_selector
    return {"apiVersion": SVC, "kind": "DPUServiceInterface", "metadata": {"name": name, "namespace": NS}, "spec": spec}


def status_of(kube: KubeEnv, kind: str, name: str) -> dict[str, Any]:
    found = kube.server.get_object(SVC, kind, name, NS) or {}
    return dict(found.get("status") or {})


def condition(kube: KubeEnv, kind: str, name: str, type_: str) -> dict[str, Any]:
    return next((c for c in status_of(kube, kind, name).get("conditions") or [] if c["type"] == type_), {})


async def test_interface_fanout_follows_selectors_members_and_reports(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str], dpu_cluster: KubeApiServer
) -> None:
    await add_cluster(kube, dpu_cluster, "dc1", {"site": "a"})
    for name, role in (("dpu-a", "worker"), ("dpu-b", "worker"), ("dpu-c", "storage"), ("dpu-d", "worker")):
        await dpu_node(dpu_cluster, name, role=role)
    for name in ("dpu-a", "dpu-b", "dpu-c"):
        await member(store, name)  # dpu-d has no dpfd yet
    await member(store, "worker-0", role="host")
    replica = await start_replica(kube, etcd_endpoints, options=ControllerOptions(events=False))
    try:
        await kube.server.apply_object(
            interface_obj("p0", {"matchLabels": {"site": "a"}}, {"matchLabels": {"role": "worker"}})
        )

        async def names_are(*want: str) -> dict[str, Intent] | None:
            got = await child_intents(store, "ServiceInterface")
            return got if sorted(got) == sorted(want) else None

        async def none_left() -> bool:
            return not await child_intents(store, "ServiceInterface")

        got = await wait_until(lambda: names_are("dpu-a p0-dpu-a", "dpu-b p0-dpu-b"),
                               what="intents for the selected DPUs with a dpfd")  # fmt: skip
        dsi = kube.server.get_object(SVC, "DPUServiceInterface", "p0", NS)
        assert dsi is not None and "svc.dpu.nvidia.com/dpuserviceinterface" in dsi["metadata"]["finalizers"]
        a = got["dpu-a p0-dpu-a"]
        assert a.ref == ObjectRef(kind="ServiceInterface", namespace=NS, name="p0-dpu-a")
        assert a.spec == {"node": "dpu-a", "interfaceType": "physical", "physical": {"interfaceName": "p0"}}
        assert a.labels == {"svc.dpu.nvidia.com/interface": "p0"}
        assert a.uid == dsi["metadata"]["uid"] and not a.deleting

        # Not ready until the dpfds report; the numbers say how many of how many.
        ready = await wait_until(lambda: condition(kube, "DPUServiceInterface", "p0", "ServiceInterfaceSetReady"),
                                 what="ServiceInterfaceSetReady")  # fmt: skip
        assert ready["status"] == "False" and "0 of 2" in ready["message"]
        assert "numberApplied 2, numberReady 0" in ready["message"]
        await report(store, got["dpu-a p0-dpu-a"])
        await report(store, got["dpu-b p0-dpu-b"], ready=False, phase="Pending")

        def one_ready_one_pending() -> dict[str, Any] | None:
            # Both reports must be in: the status may show dpu-a's before dpu-b's has arrived.
            c = condition(kube, "DPUServiceInterface", "p0", "ServiceInterfaceSetReady")
            message = c.get("message", "")
            return c if "numberReady 1" in message and "p0-dpu-b: Pending" in message else None

        ready = await wait_until(one_ready_one_pending, what="one ready, one pending")
        assert ready["status"] == "False" and "p0-dpu-b: Pending: no port" in ready["message"]
        assert condition(kube, "DPUServiceInterface", "p0", "Ready")["status"] == "False"
        await report(store, got["dpu-b p0-dpu-b"])
        top = await wait_until(lambda: condition(kube, "DPUServiceInterface", "p0", "Ready").get("status") == "True"
                               and status_of(kube, "DPUServiceInterface", "p0"), what="Ready")  # fmt: skip
        assert top["observedGeneration"] == dsi["metadata"]["generation"]
        set_ready = condition(kube, "DPUServiceInterface", "p0", "ServiceInterfaceSetReady")
        assert "numberApplied 2, numberReady 2" in set_ready["message"]

        # Label changes on DPU Nodes move intents; a dpfd joining gets one.
        await dpu_node(dpu_cluster, "dpu-c", role="worker")
        await dpu_node(dpu_cluster, "dpu-a", role="storage")
        await wait_until(lambda: names_are("dpu-b p0-dpu-b", "dpu-c p0-dpu-c"), what="intents follow Node labels")
        await member(store, "dpu-d")
        got = await wait_until(lambda: names_are("dpu-b p0-dpu-b", "dpu-c p0-dpu-c", "dpu-d p0-dpu-d"),
                               what="intent for a DPU whose dpfd joined")  # fmt: skip
        await wait_until(lambda: "1 of 3" in condition(kube, "DPUServiceInterface", "p0", "Ready").get("message", ""),
                         what="Ready reflects the new children")  # fmt: skip

        # The DPUCluster's labels no longer match: no intents.
        await kube.server.apply_object(
            {"apiVersion": PROV, "kind": "DPUCluster", "metadata": {"name": "dc1", "namespace": NS,
             "labels": {"site": "b"}}, "spec": {"type": "static", "version": "v1.30.0", "kubeconfig": "dc1-admin"}}
        )  # fmt: skip
        await wait_until(none_left, what="no intents once the cluster is not selected")
        await kube.server.apply_object(
            {"apiVersion": PROV, "kind": "DPUCluster", "metadata": {"name": "dc1", "namespace": NS,
             "labels": {"site": "a"}}, "spec": {"type": "static", "version": "v1.30.0", "kubeconfig": "dc1-admin"}}
        )  # fmt: skip
        got = await wait_until(lambda: names_are("dpu-b p0-dpu-b", "dpu-c p0-dpu-c", "dpu-d p0-dpu-d"),
                               what="intents back with the cluster")  # fmt: skip

        # Deletion: the children turn deleting; the object stays until every dpfd released its child.
        await kube.server.delete_object(SVC, "DPUServiceInterface", "p0", NS)

        async def all_deleting() -> dict[str, Intent] | None:
            now = await names_are("dpu-b p0-dpu-b", "dpu-c p0-dpu-c", "dpu-d p0-dpu-d")
            return now if now and all(i.deleting for i in now.values()) else None

        got = await wait_until(all_deleting, what="children marked deleting")
        await wait_until(lambda: condition(kube, "DPUServiceInterface", "p0", "Ready").get("reason")
                         == "AwaitingDeletion", what="AwaitingDeletion")  # fmt: skip
        await report(store, got["dpu-b p0-dpu-b"], ready=False, phase="Deleting")
        await wait_until(lambda: names_are("dpu-c p0-dpu-c", "dpu-d p0-dpu-d"), what="a released child goes")
        assert kube.server.get_object(SVC, "DPUServiceInterface", "p0", NS) is not None
        await report(store, got["dpu-c p0-dpu-c"], ready=False, phase="Deleting")
        await store.delete(store_keys.member_key("dpu-d"))  # its dpfd left: nothing to wait for there
        await wait_until(none_left, what="all children gone")
        await wait_until(lambda: kube.server.get_object(SVC, "DPUServiceInterface", "p0", NS) is None,
                         what="DPUServiceInterface gone once its finalizer is removed")  # fmt: skip
    finally:
        await replica.stop()


async def test_chain_fanout_to_every_dpu_without_selectors(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str], dpu_cluster: KubeApiServer
) -> None:
    await add_cluster(kube, dpu_cluster, "dc1", {})
    for name in ("dpu-a", "dpu-b"):
        await dpu_node(dpu_cluster, name, role="worker")
        await member(store, name)
    replica = await start_replica(kube, etcd_endpoints, options=ControllerOptions(events=False))
    try:
        port = {"serviceInterface": {"matchLabels": {"svc.dpu.nvidia.com/interface": "p0"}}}
        switch = {"ports": [port, {"serviceInterface": {"matchLabels": {"svc.dpu.nvidia.com/interface": "pf0hpf"}}}]}
        chain = {"apiVersion": SVC, "kind": "DPUServiceChain", "metadata": {"name": "ch", "namespace": NS},
                 "spec": {"template": {"spec": {"template": {"metadata": {"labels": {"app": "x"}},
                                                              "spec": {"switches": [switch]}}}}}}  # fmt: skip
        await kube.server.apply_object(chain)

        async def chains() -> dict[str, Intent] | None:
            got = await child_intents(store, "ServiceChain")
            return got if sorted(got) == ["dpu-a ch-dpu-a", "dpu-b ch-dpu-b"] else None

        got = await wait_until(chains, what="a ServiceChain intent for every DPU")
        assert got["dpu-b ch-dpu-b"].spec == {"node": "dpu-b", "switches": [switch]}
        for intent in got.values():
            await report(store, intent)
        await wait_until(lambda: condition(kube, "DPUServiceChain", "ch", "Ready").get("status") == "True",
                         what="DPUServiceChain Ready")  # fmt: skip
        reconciled = condition(kube, "DPUServiceChain", "ch", "ServiceChainSetReconciled")
        assert (reconciled["status"], reconciled["reason"]) == ("True", "Success")

        # A changed chain is a new generation: not ready until the dpfds have observed it.
        switch["ports"] = [port]
        await kube.server.apply_object(chain)
        await wait_until(lambda: condition(kube, "DPUServiceChain", "ch", "Ready").get("status") == "False",
                         what="not Ready at a new generation")  # fmt: skip
        got = await wait_until(chains, what="chains")
        assert all(i.spec["switches"] == [switch] for i in got.values())
        assert all(i.generation == 2 for i in got.values())
        for intent in got.values():
            await report(store, intent)
        await wait_until(lambda: condition(kube, "DPUServiceChain", "ch", "Ready").get("status") == "True",
                         what="Ready again")  # fmt: skip
    finally:
        await replica.stop()
