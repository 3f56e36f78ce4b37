"""The ServiceInterfaceSet / ServiceChainSet objects the fan-out keeps in each DPU cluster, with a real host API,
real TLS DPU clusters and real etcd; the test plays the DPUs' dpfds. The controller registers the chaining CRDs in
each DPU cluster, writes the set DPF writes there (parent's name and namespace, template labels, annotations and
spec, DPF's set finalizer), keeps its numberApplied / numberReady and conditions on the dpfds' reports, moves it
when the clusterSelector stops matching, and deletes it with the parent once the children are released. The real
kubectl against the DPU cluster shows the sets."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from controller_harness import NS, PROV, KubeEnv, kube, start_replica, store, wait_until
from test_controller_chains import SVC, add_cluster, child_intents, dpu_node, member, report

from controller.chains.sets import install_crds
from controller.kube.client import KubeClient
from controller.manager import ControllerOptions
from dpfd.api.intents import Intent
from dpfd.sim.kubeapi import KubeApiServer
from dpfd.sim.kubeapi.errors import ApiError as SimApiError
from dpfd.sim.kubeapi.tls import ensure_tls
from dpfd.store import Store

__all__ = ["kube", "store"]  # fixtures

CRD_API = "apiextensions.k8s.io/v1"


@pytest_asyncio.fixture
async def dpu_clusters(tmp_path: Path) -> AsyncIterator[tuple[KubeApiServer, KubeApiServer]]:
    servers = (
        KubeApiServer(tls=ensure_tls(tmp_path / "pki1"), bookmark_interval=0.2),
        KubeApiServer(tls=ensure_tls(tmp_path / "pki2"), bookmark_interval=0.2),
    )
    for s in servers:
        await s.start()
    yield servers
    for s in servers:
        await s.stop()


def set_in(cluster: KubeApiServer, kind: str, name: str) -> dict[str, Any] | None:
    """The set in a DPU cluster, or None (also while its CRD is not registered there)."""
    try:
        return cluster.get_object(SVC, kind, name, NS)
    except SimApiError as exc:
        if exc.code == 404:
            return None
        raise


def numbers(obj: dict[str, Any] | None) -> tuple[int, int] | None:
    status = (obj or {}).get("status") or {}
    if "numberApplied" not in status:
        return None
    return status["numberApplied"], status["numberReady"]


def cond(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c["type"] == type_), {})


async def kubectl(kubeconfig: Path, *args: str) -> str:
    env = {**os.environ, "HOME": str(kubeconfig.parent), "KUBECACHEDIR": str(kubeconfig.parent / "kube-cache")}
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(kubeconfig), *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, f"kubectl {' '.join(args)} failed ({proc.returncode}): {err.decode()}"
    return out.decode()


def interface(cluster_site: str, name: str = "p0", interface_name: str = "p0") -> dict[str, Any]:
    template = {
        "metadata": {"labels": {"svc.dpu.nvidia.com/interface": name}, "annotations": {"team": "net"}},
        "spec": {"interfaceType": "physical", "physical": {"interfaceName": interface_name}},
    }
    return {"apiVersion": SVC, "kind": "DPUServiceInterface", "metadata": {"name": name, "namespace": NS},
            "spec": {"clusterSelector": {"matchLabels": {"site": cluster_site}},
                     "template": {"metadata": {"labels": {"set": "yes"}},
                                  "spec": {"nodeSelector": {"matchLabels": {"role": "worker"}},
                                           "template": template}}}}  # fmt: skip


async def test_interface_sets_in_the_selected_dpu_cluster_follow_reports_selection_and_deletion(
    kube: KubeEnv,
    store: Store,
    etcd_endpoints: list[str],
    dpu_clusters: tuple[KubeApiServer, KubeApiServer],
    tmp_path: Path,
) -> None:
    dc1, dc2 = dpu_clusters
    await add_cluster(kube, dc1, "dc1", {"site": "a"})
    await add_cluster(kube, dc2, "dc2", {"site": "b"})
    for cluster, name in ((dc1, "dpu-a"), (dc1, "dpu-b"), (dc2, "dpu-c")):
        await dpu_node(cluster, name, role="worker")
        await member(store, name)
    replica = await start_replica(kube, etcd_endpoints, options=ControllerOptions(events=False))
    try:
        await kube.server.apply_object(interface("a"))
        sis = await wait_until(lambda: numbers(set_in(dc1, "ServiceInterfaceSet", "p0")) == (2, 0)
                               and set_in(dc1, "ServiceInterfaceSet", "p0"), what="the set in dc1")  # fmt: skip
        parent = kube.server.get_object(SVC, "DPUServiceInterface", "p0", NS)
        assert parent is not None
        # As DPF writes it: the parent's name and namespace, the template's labels, annotations and spec.
        assert sis["metadata"]["labels"] == {"set": "yes"}
        assert "annotations" not in sis["metadata"] or sis["metadata"]["annotations"] == {}
        assert sis["metadata"]["finalizers"] == ["dpu.nvidia.com/serviceinterfaceset"]
        assert sis["spec"] == parent["spec"]["template"]["spec"]
        assert not sis["metadata"].get("ownerReferences")  # the parent is in another cluster
        assert dc1.get_object(CRD_API, "CustomResourceDefinition", "servicechainsets.svc.dpu.nvidia.com")
        assert set_in(dc2, "ServiceInterfaceSet", "p0") is None
        assert (cond(sis, "Ready")["status"], cond(sis, "Ready")["reason"]) == ("False", "Pending")
        assert "0 of 2 ServiceInterface(s) ready" in cond(sis, "ServiceInterfacesReady")["message"]
        assert cond(sis, "ServiceInterfacesReconciled")["status"] == "True"
        assert sis["status"]["observedGeneration"] == sis["metadata"]["generation"] == 1

        got = await child_intents(store, "ServiceInterface")
        await report(store, got["dpu-a p0-dpu-a"])
        one = await wait_until(lambda: numbers(set_in(dc1, "ServiceInterfaceSet", "p0")) == (2, 1)
                               and set_in(dc1, "ServiceInterfaceSet", "p0"), what="one ready")  # fmt: skip
        assert "p0-dpu-b: no report yet" in cond(one, "ServiceInterfacesReady")["message"]
        await report(store, got["dpu-b p0-dpu-b"])
        ready = await wait_until(lambda: cond(set_in(dc1, "ServiceInterfaceSet", "p0"), "Ready").get("status")
                                 == "True" and set_in(dc1, "ServiceInterfaceSet", "p0"), what="set Ready")  # fmt: skip
        assert numbers(ready) == (2, 2)

        # kubectl on the DPU cluster shows it, with DPF's printer columns.
        kubeconfig = tmp_path / "dc1.conf"
        dc1.write_kubeconfig(kubeconfig)
        listed = json.loads(await kubectl(kubeconfig, "get", "serviceinterfacesets", "-n", NS, "-o", "json"))
        assert [(i["metadata"]["name"], i["status"]["numberReady"]) for i in listed["items"]] == [("p0", 2)]
        table = (await kubectl(kubeconfig, "get", "serviceinterfacesets", "-n", NS)).splitlines()
        assert table[0].split()[:3] == ["NAME", "READY", "REASON"] and table[1].split()[:3] == ["p0", "True", "Success"]

        # A spec change reaches the set (a new generation there, not ready until the dpfds observe it).
        await kube.server.apply_object(interface("a", interface_name="p1"))
        changed = await wait_until(lambda: (s := set_in(dc1, "ServiceInterfaceSet", "p0")) is not None
                                   and s["metadata"]["generation"] == 2 and numbers(s) == (2, 0) and s,
                                   what="the changed spec in the set")  # fmt: skip
        assert changed["spec"]["template"]["spec"]["physical"] == {"interfaceName": "p1"}

        # The clusterSelector now picks dc2: the set leaves dc1 and appears there.
        await kube.server.apply_object(interface("b", interface_name="p1"))
        moved = await wait_until(lambda: set_in(dc1, "ServiceInterfaceSet", "p0") is None
                                 and set_in(dc2, "ServiceInterfaceSet", "p0"), what="the set moves to dc2")  # fmt: skip
        assert numbers(moved) == (1, 0)
        got = await wait_until(lambda: _intents_are(store, "dpu-c p0-dpu-c"), what="dpu-c's intent")
        await report(store, got["dpu-c p0-dpu-c"])
        await wait_until(lambda: numbers(set_in(dc2, "ServiceInterfaceSet", "p0")) == (1, 1), what="dc2 ready")

        # Deleting the parent: the set is deleted but held (AwaitingDeletion) until the child is released.
        await kube.server.delete_object(SVC, "DPUServiceInterface", "p0", NS)
        held = await wait_until(lambda: (s := set_in(dc2, "ServiceInterfaceSet", "p0")) is not None
                                and s["metadata"].get("deletionTimestamp") and s, what="set deleting")  # fmt: skip
        await wait_until(lambda: cond(set_in(dc2, "ServiceInterfaceSet", "p0"), "Ready").get("reason")
                         == "AwaitingDeletion", what="set AwaitingDeletion")  # fmt: skip
        assert numbers(set_in(dc2, "ServiceInterfaceSet", "p0")) == (1, 0)
        assert held["metadata"]["finalizers"] == ["dpu.nvidia.com/serviceinterfaceset"]
        got = await wait_until(lambda: _intents_are(store, "dpu-c p0-dpu-c"), what="the held intent")
        await report(store, got["dpu-c p0-dpu-c"], ready=False, phase="Deleting")
        await wait_until(lambda: set_in(dc2, "ServiceInterfaceSet", "p0") is None, what="the set goes")
        await wait_until(lambda: kube.server.get_object(SVC, "DPUServiceInterface", "p0", NS) is None,
                         what="the parent goes after its set")  # fmt: skip
        assert set_in(dc1, "ServiceInterfaceSet", "p0") is None
    finally:
        await replica.stop()


async def _intents_are(store: Store, *want: str) -> dict[str, Intent] | None:
    got = await child_intents(store, "ServiceInterface")
    return got if sorted(got) == sorted(want) else None


async def test_chain_set_in_every_dpu_cluster_and_a_set_deleted_with_its_cluster_deselected(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str], dpu_clusters: tuple[KubeApiServer, KubeApiServer]
) -> None:
    dc1, dc2 = dpu_clusters
    await add_cluster(kube, dc1, "dc1", {})
    await add_cluster(kube, dc2, "dc2", {})
    await dpu_node(dc1, "dpu-a", role="worker")
    await member(store, "dpu-a")
    replica = await start_replica(kube, etcd_endpoints, options=ControllerOptions(events=False))
    try:
        switch = {"ports": [{"serviceInterface": {"matchLabels": {"svc.dpu.nvidia.com/interface": "p0"}}}]}
        chain = {"apiVersion": SVC, "kind": "DPUServiceChain", "metadata": {"name": "ch", "namespace": NS},
                 "spec": {"template": {"spec": {"template": {"spec": {"switches": [switch]}}}}}}  # fmt: skip
        await kube.server.apply_object(chain)
        await wait_until(lambda: numbers(set_in(dc1, "ServiceChainSet", "ch")) == (1, 0)
                         and numbers(set_in(dc2, "ServiceChainSet", "ch")) == (0, 0), what="sets in both")  # fmt: skip
        empty = set_in(dc2, "ServiceChainSet", "ch")
        assert cond(empty, "Ready")["status"] == "True"  # no DPU there: nothing to wait for, as DPF says
        assert cond(empty, "ServiceChainsReady")["status"] == "True"
        got = await child_intents(store, "ServiceChain")
        await report(store, got["dpu-a ch-dpu-a"])
        await wait_until(lambda: cond(set_in(dc1, "ServiceChainSet", "ch"), "Ready").get("status") == "True",
                         what="dc1's set Ready")  # fmt: skip
        assert numbers(set_in(dc1, "ServiceChainSet", "ch")) == (1, 1)

        # Someone changes or deletes the set in the DPU cluster: the controller (watching the sets) puts it back.
        before = set_in(dc1, "ServiceChainSet", "ch")
        assert before is not None
        await dc1.apply_object({"apiVersion": SVC, "kind": "ServiceChainSet", "metadata": {"name": "ch",
                                "namespace": NS, "labels": {"x": "y"}}, "spec": {"nodeSelector": {"matchLabels":
                                {"role": "none"}}, "template": {"spec": {"switches": [switch]}}}})  # fmt: skip
        await wait_until(lambda: (s := set_in(dc1, "ServiceChainSet", "ch")) is not None
                         and "nodeSelector" not in s["spec"] and not s["metadata"].get("labels"),
                         what="an edited set restored")  # fmt: skip
        await dc1.delete_object(SVC, "ServiceChainSet", "ch", NS)
        again = await wait_until(lambda: (s := set_in(dc1, "ServiceChainSet", "ch")) is not None
                                 and s["metadata"]["uid"] != before["metadata"]["uid"] and numbers(s) == (1, 1)
                                 and s, what="a deleted set written anew")  # fmt: skip
        assert not again["metadata"].get("deletionTimestamp")
        assert again["metadata"]["finalizers"] == ["dpu.nvidia.com/servicechainset"]

        # dc2 no longer selected: its set is deleted there, dc1's stays.
        chain["spec"]["clusterSelector"] = {"matchLabels": {"dpu": "yes"}}
        await kube.server.apply_object(
            {"apiVersion": PROV, "kind": "DPUCluster", "metadata": {"name": "dc1", "namespace": NS,
             "labels": {"dpu": "yes"}}, "spec": {"type": "static", "version": "v1.30.0", "kubeconfig": "dc1-admin"}}
        )  # fmt: skip
        await kube.server.apply_object(chain)
        await wait_until(lambda: set_in(dc2, "ServiceChainSet", "ch") is None, what="dc2's set deleted")
        # A new generation of the parent: dc1's child is not ready until its dpfd observed it.
        await wait_until(lambda: numbers(set_in(dc1, "ServiceChainSet", "ch")) == (1, 0), what="new generation")
        got = await child_intents(store, "ServiceChain")
        assert got["dpu-a ch-dpu-a"].generation == 2
        await report(store, got["dpu-a ch-dpu-a"])
        await wait_until(lambda: numbers(set_in(dc1, "ServiceChainSet", "ch")) == (1, 1), what="ready again")
        await wait_until(lambda: cond(kube.server.get_object(SVC, "DPUServiceChain", "ch", NS), "Ready")
                         .get("status") == "True", what="DPUServiceChain Ready")  # fmt: skip
        assert set_in(dc2, "ServiceChainSet", "ch") is None
    finally:
        await replica.stop()


async def test_crd_registration_is_idempotent_and_repairs_a_changed_crd(tmp_path: Path) -> None:
    server = KubeApiServer(tls=ensure_tls(tmp_path / "pki"))
    await server.start()
    try:
        client = await KubeClient.from_kubeconfig_dict(server.kubeconfig())
        try:
            assert await install_crds(client) == 4
            assert await install_crds(client) == 0
            name = "serviceinterfacesets.svc.dpu.nvidia.com"
            crd = server.get_object(CRD_API, "CustomResourceDefinition", name)
            assert crd is not None
            crd["spec"]["versions"][0].pop("additionalPrinterColumns")
            await server.apply_object({**crd, "spec": crd["spec"]})
            changed = server.get_object(CRD_API, "CustomResourceDefinition", name)
            assert changed is not None and "additionalPrinterColumns" not in changed["spec"]["versions"][0]
            assert await install_crds(client) == 1
            fixed = server.get_object(CRD_API, "CustomResourceDefinition", name)
            assert fixed is not None and fixed["spec"]["versions"][0]["additionalPrinterColumns"]
        finally:
            await client.close()
    finally:
        await server.stop()
