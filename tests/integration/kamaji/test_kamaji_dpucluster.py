"""A kamaji DPUCluster end to end: the controller's DPUCluster reconciler (controller/dpucluster) asks for a Kamaji
TenantControlPlane and keepalived DaemonSet, the emulated Kamaji (dpfd/sim/kamaji.py) fulfils the TenantControlPlane
with an emulated API over TLS and writes its admin kubeconfig Secret, and the DPUCluster goes Creating -> Ready on it;
deleting the DPUCluster takes the TenantControlPlane, its Secret and its API server away."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.dpucluster import DpuClusters, DpuClusterStatusReconciler
from controller.dpucluster.resources import DPUCLUSTERS
from controller.kube.client import KubeClient
from controller.kube.informer import Informer
from controller.kube.objects import ObjKey
from controller.kube.resources import NODES
from dpfd.api.crds import generate_crds
from dpfd.sim.kamaji import KamajiEmulator
from dpfd.sim.kamaji_crds import kamaji_crds
from dpfd.sim.kubeapi import KubeApiServer
from tests.waiting import eventually

NS = "dpf-operator-system"
PROV = "provisioning.dpu.nvidia.com/v1alpha1"
TCP = "kamaji.clastix.io/v1alpha1"
NAME = "dpu-cplane"
KEY = ObjKey(NS, NAME)
REPO = Path(__file__).parents[3]


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[tuple[KubeApiServer, KubeClient]]:
    server = KubeApiServer()
    await server.start()
    await server.register_crds(generate_crds() + kamaji_crds())
    server.write_kubeconfig(tmp_path / "host.conf")
    client = await KubeClient.from_kubeconfig(str(tmp_path / "host.conf"))
    yield server, client
    await client.close()
    await server.stop()


async def stop(*tasks: asyncio.Task[Any]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def kamaji_cluster() -> dict[str, Any]:
    keepalived = {"vip": "10.0.110.200", "virtualRouterID": 126, "interface": "br-dpu",
                  "nodeSelector": {"node-role.kubernetes.io/control-plane": ""}}  # fmt: skip
    return {"apiVersion": PROV, "kind": "DPUCluster", "metadata": {"name": NAME, "namespace": NS},
            "spec": {"type": "kamaji", "version": "v1.30.2", "maxNodes": 10,
                     "clusterEndpoint": {"keepalived": keepalived}}}  # fmt: skip


async def test_kamaji_dpucluster_creating_then_ready_on_the_emulated_control_plane_and_deleted_with_it(
    host: tuple[KubeApiServer, KubeClient], tmp_path: Path
) -> None:
    server, client = host
    clusters = DpuClusters(client, reconnect_interval=0.2)
    informer = Informer(client, DPUCLUSTERS)
    reconciler = DpuClusterStatusReconciler(client, informer, clusters, health_period=0.5, kamaji_poll=0.1)
    tasks = [asyncio.create_task(c) for c in (informer.run(), reconciler.run(), clusters.run())]
    kamaji = KamajiEmulator(server.url, tmp_path / "kamaji")
    kamaji_task: asyncio.Task[None] | None = None
    try:
        cluster = await server.apply_object(kamaji_cluster())

        def dpucluster() -> dict[str, Any]:
            return server.get_object(PROV, "DPUCluster", NAME, NS) or {}

        def conditions() -> dict[str, tuple[str, str]]:
            return {c["type"]: (c["status"], c["reason"]) for c in (dpucluster().get("status") or {}).get("conditions") or []}  # fmt: skip

        # No Kamaji yet: the control plane is asked for, and the DPUCluster waits in Creating.
        await eventually(lambda: "KeepalivedReady" in conditions(), what="the DPUCluster's conditions")
        assert dpucluster()["status"]["phase"] == "Creating"
        assert conditions() == {"Created": ("False", "ClusterNotReady"), "KeepalivedReady": ("True", "Deployed")}
        assert not dpucluster()["spec"].get("kubeconfig")
        assert dpucluster()["metadata"]["finalizers"] == ["provisioning.dpu.nvidia.com/cluster-manager-clean-up",
                                                         "provisioning.dpu.nvidia.com/cluster-manager-internal-clean-up"]  # fmt: skip
        owner = {"apiVersion": PROV, "kind": "DPUCluster", "name": NAME, "uid": cluster["metadata"]["uid"],
                 "controller": True, "blockOwnerDeletion": True}  # fmt: skip

        # First the NodePort Service: the API server allocates the node port the control plane is reached on.
        service = server.get_object("v1", "Service", NAME, NS) or {}
        assert service["spec"]["type"] == "NodePort"
        assert service["spec"]["selector"] == {"kamaji.clastix.io/name": NAME}
        node_port = service["spec"]["ports"][0]["nodePort"]
        assert service["spec"]["ports"][0]["name"] == "kube-apiserver" and 30000 <= node_port <= 32767

        # Then the TenantControlPlane, reached at VIP:nodePort.
        tcp = server.get_object(TCP, "TenantControlPlane", NAME, NS)
        assert tcp is not None
        assert tcp["metadata"]["ownerReferences"] == [owner]
        assert tcp["metadata"]["labels"] == {"tenant.clastix.io": NAME}
        deployment = tcp["spec"]["controlPlane"]["deployment"]
        assert deployment["replicas"] == 3
        assert {t["key"] for t in deployment["tolerations"]} == {"node-role.kubernetes.io/master",
                                                                 "node-role.kubernetes.io/control-plane"}  # fmt: skip
        assert deployment["resources"]["apiServer"]["requests"] == {"cpu": "250m", "memory": "512Mi"}
        assert tcp["spec"]["controlPlane"]["service"]["serviceType"] == "NodePort"
        assert tcp["spec"]["kubernetes"]["version"] == "v1.30.2"
        assert tcp["spec"]["networkProfile"] == {"address": "10.0.110.200", "port": node_port}
        assert tcp["spec"]["dataStore"] == "default"
        assert tcp["spec"]["addons"] == {"coreDNS": {}, "kubeProxy": {}}

        # And keepalived, holding the VIP where the local API answers on the node port.
        daemonset = server.get_object("apps/v1", "DaemonSet", f"{NAME}-keepalived", NS)
        assert daemonset is not None
        assert daemonset["metadata"]["ownerReferences"] == [owner]
        pod = daemonset["spec"]["template"]["spec"]
        assert pod["hostNetwork"] is True
        assert pod["nodeSelector"] == {"node-role.kubernetes.io/control-plane": ""}
        env = {e["name"]: e.get("value") for e in pod["initContainers"][0]["env"]}
        assert env == {"NODE_IP": None, "INTERFACE": "br-dpu", "VIRTUAL_ROUTER_ID": "126",
                       "NODE_PORT": str(node_port), "VIRTUAL_IP": "10.0.110.200"}  # fmt: skip
        config_map = server.get_object("v1", "ConfigMap", f"{NAME}-keepalived", NS) or {}
        assert "https://localhost:NODE_PORT" in config_map["data"]["keepalived.conf.tmpl"]

        # Kamaji comes: it fulfils the TenantControlPlane, and the DPUCluster goes Ready on the emulated API.
        kamaji_task = asyncio.create_task(kamaji.run())
        await eventually(lambda: dpucluster().get("status", {}).get("phase") == "Ready", within=15, what="Ready")
        assert dpucluster()["spec"]["kubeconfig"] == f"{NAME}-admin-kubeconfig"
        assert conditions() == {"Created": ("True", "Created"), "Ready": ("True", "HealthCheckPassed"),
                                "KeepalivedReady": ("True", "Deployed")}  # fmt: skip
        plane = kamaji.planes[(NS, NAME)]
        assert plane.server.url == f"https://127.0.0.1:{node_port}"  # the node port, as Kamaji's answers there
        service = server.get_object("v1", "Service", NAME, NS) or {}
        kamaji_ref = next(r for r in service["metadata"]["ownerReferences"] if r["kind"] == "TenantControlPlane")
        assert (kamaji_ref["name"], kamaji_ref["controller"]) == (NAME, True)
        assert service["spec"]["ports"][0]["nodePort"] == node_port  # Kamaji keeps the port it was given
        tcp = server.get_object(TCP, "TenantControlPlane", NAME, NS) or {}
        assert tcp["status"]["kubernetesResources"]["version"] == {"status": "Ready", "version": "v1.30.2"}
        assert tcp["status"]["controlPlaneEndpoint"] == plane.server.url.removeprefix("https://")
        assert tcp["status"]["kubeconfig"] == {"admin": {"secretName": f"{NAME}-admin-kubeconfig"}}
        secret = server.get_object("v1", "Secret", f"{NAME}-admin-kubeconfig", NS) or {}
        admin = yaml.safe_load(base64.b64decode(secret["data"]["admin.conf"]))
        assert admin["current-context"] == NAME  # named after the cluster, as Kamaji's
        assert admin["clusters"][0]["cluster"]["server"] == plane.server.url
        assert "certificate-authority-data" in admin["clusters"][0]["cluster"]

        # The controller's access to the DPU cluster is that API: a Node written through it lands there.
        dpu_client = await clusters.admin_client(KEY)
        await dpu_client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "dpu-node-1"}})
        assert plane.server.get_object("v1", "Node", "dpu-node-1") is not None
        join = await clusters.join_command(dpucluster())
        assert join.startswith(f"kubeadm join {plane.server.url.removeprefix('https://')} --token ")

        # The real kubectl shows the TenantControlPlane as Kamaji's CRD prints it.
        env = {**os.environ, "HOME": str(tmp_path), "KUBECACHEDIR": str(tmp_path / "kube-cache")}
        kubectl = await asyncio.create_subprocess_exec(
            "kubectl", "--kubeconfig", str(tmp_path / "host.conf"), "get", "tcp", "-n", NS, "--no-headers",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, err = await asyncio.wait_for(kubectl.communicate(), 30)
        assert kubectl.returncode == 0, err.decode()
        endpoint = plane.server.url.removeprefix("https://")
        assert out.decode().split()[:5] == [NAME, "v1.30.2", "Ready", endpoint, f"{NAME}-admin-kubeconfig"]

        # Deleting the DPUCluster deletes the TenantControlPlane (and so its Secret) and the keepalived DaemonSet;
        # Kamaji stops the control plane.
        await server.delete_object(PROV, "DPUCluster", NAME, NS)
        await eventually(lambda: not dpucluster(), within=10, what="the DPUCluster gone (its finalizers removed)")
        await eventually(lambda: server.get_object(TCP, "TenantControlPlane", NAME, NS) is None, within=10,
                         what="the TenantControlPlane deleted")  # fmt: skip
        await eventually(lambda: server.get_object("apps/v1", "DaemonSet", f"{NAME}-keepalived", NS) is None,
                         within=10, what="the keepalived DaemonSet deleted")  # fmt: skip
        await eventually(lambda: server.get_object("v1", "Secret", f"{NAME}-admin-kubeconfig", NS) is None,
                         within=10, what="the admin kubeconfig Secret deleted")  # fmt: skip
        await eventually(lambda: server.get_object("v1", "Service", NAME, NS) is None, within=10,
                         what="the Service deleted")  # fmt: skip
        await eventually(lambda: (NS, NAME) not in kamaji.planes, within=10, what="the control plane stopped")
    finally:
        await stop(*tasks, *([kamaji_task] if kamaji_task else []))
        await clusters.close()
        await kamaji.close()


async def test_the_kamaji_process_fulfils_a_tenant_control_plane(
    host: tuple[KubeApiServer, KubeClient], tmp_path: Path
) -> None:
    """`python -m dpfd.sim.kamaji`, as dpf-sim runs it: for a TenantControlPlane nobody made a Service for, the
    NodePort Service Kamaji makes, the Secret, the kubeconfig file and status, and a control plane that answers on
    the node port with its admin kubeconfig."""
    server, _ = host
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dpfd.sim.kamaji", "--server", server.url, "--state-dir", str(tmp_path / "kamaji"),
        "--kubeconfig-dir", str(tmp_path / "kubeconfigs"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=REPO,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"ready"
        await server.apply_object({"apiVersion": TCP, "kind": "TenantControlPlane",
                                   "metadata": {"name": "tcp-1", "namespace": NS},
                                   "spec": {"kubernetes": {"version": "v1.31.0"}}})  # fmt: skip

        def version() -> dict[str, Any]:
            tcp = server.get_object(TCP, "TenantControlPlane", "tcp-1", NS) or {}
            return ((tcp.get("status") or {}).get("kubernetesResources") or {}).get("version") or {}

        await eventually(lambda: version().get("status") == "Ready", within=15, what="TenantControlPlane Ready")
        assert version()["version"] == "v1.31.0"
        secret = server.get_object("v1", "Secret", "tcp-1-admin-kubeconfig", NS) or {}
        assert secret["metadata"]["ownerReferences"][0]["kind"] == "TenantControlPlane"
        admin = yaml.safe_load(base64.b64decode(secret["data"]["admin.conf"]))
        assert yaml.safe_load((tmp_path / "kubeconfigs" / f"{NS}-tcp-1.kubeconfig").read_text()) == admin
        service = server.get_object("v1", "Service", "tcp-1", NS) or {}
        assert [r["kind"] for r in service["metadata"]["ownerReferences"]] == ["TenantControlPlane"]
        node_port = service["spec"]["ports"][0]["nodePort"]
        assert admin["clusters"][0]["cluster"]["server"] == f"https://127.0.0.1:{node_port}"
        async with await KubeClient.from_kubeconfig_dict(admin) as dpu:
            assert (await dpu.server_version()).get("gitVersion")

        # A deleted TenantControlPlane takes its kubeconfig file with it.
        await server.delete_object(TCP, "TenantControlPlane", "tcp-1", NS)
        await eventually(lambda: not (tmp_path / "kubeconfigs" / f"{NS}-tcp-1.kubeconfig").exists(), within=10,
                         what="the kubeconfig file removed")  # fmt: skip
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
