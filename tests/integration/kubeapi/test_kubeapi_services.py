"""Services in the emulated API, through the real kubectl: cluster IPs and node ports are allocated as the API server
does, kept across a replace of the original manifest, and clashes or misuse are refused with its messages."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import yaml
from conftest import Kubectl

from dpfd.sim.kubeapi import KubeApiServer


def service(name: str, kind: str = "NodePort", **port: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": kind, "selector": {"app": name},
                     "ports": [{"name": "kube-apiserver", "port": 6443, **port}]}}  # fmt: skip


async def apply(kubectl: Kubectl, tmp_path: Path, obj: dict[str, Any], *verb: str) -> Any:
    path = tmp_path / f"{obj['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(obj))
    return await kubectl(*(verb or ("apply",)), "-f", str(path), check=False)


async def test_node_port_and_cluster_ip_are_allocated_and_kept(
    kubeapi: KubeApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    assert (await apply(kubectl, tmp_path, service("tenant"))).rc == 0
    svc = json.loads((await kubectl("get", "svc", "tenant", "-o", "json")).out)
    port = svc["spec"]["ports"][0]
    assert 30000 <= port["nodePort"] <= 32767
    assert (port["protocol"], port["targetPort"]) == ("TCP", 6443)
    assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    assert svc["spec"]["clusterIPs"] == [svc["spec"]["clusterIP"]]

    row = (await kubectl("get", "svc", "tenant", "--no-headers")).out.split()
    assert row[:5] == ["tenant", "NodePort", svc["spec"]["clusterIP"], "<none>", f"6443:{port['nodePort']}/TCP"]

    # A PUT of the original manifest (no nodePort, no clusterIP) keeps both, as the API server does.
    assert (await apply(kubectl, tmp_path, service("tenant"), "replace")).rc == 0
    again = json.loads((await kubectl("get", "svc", "tenant", "-o", "json")).out)
    assert again["spec"]["ports"][0]["nodePort"] == port["nodePort"]
    assert again["spec"]["clusterIP"] == svc["spec"]["clusterIP"]

    # A second Service gets other ones.
    assert (await apply(kubectl, tmp_path, service("other"))).rc == 0
    other = kubeapi.get_object("v1", "Service", "other", "default") or {}
    assert other["spec"]["ports"][0]["nodePort"] != port["nodePort"]
    assert other["spec"]["clusterIP"] != svc["spec"]["clusterIP"]


async def test_clashes_and_misuse_are_refused_and_nothing_is_stored(
    kubeapi: KubeApiServer, kubectl: Kubectl, tmp_path: Path
) -> None:
    assert (await apply(kubectl, tmp_path, service("first", nodePort=31000))).rc == 0
    clash = await apply(kubectl, tmp_path, service("second", nodePort=31000))
    assert clash.rc != 0
    assert 'Service "second" is invalid: spec.ports[0].nodePort: Invalid value: 31000: provided port is already allocated' in clash.err  # fmt: skip
    low = await apply(kubectl, tmp_path, service("low", nodePort=80))
    assert "spec.ports[0].nodePort: Invalid value: 80: provided port is not in the valid range" in low.err
    cluster_ip = await apply(kubectl, tmp_path, service("plain", "ClusterIP", nodePort=31001))
    assert "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'" in cluster_ip.err
    for refused in ("second", "low", "plain"):
        assert kubeapi.get_object("v1", "Service", refused, "default") is None

    # The cluster IP may not change once set.
    moved = service("first", nodePort=31000)
    moved["spec"]["clusterIP"] = "10.96.200.200"
    changed = await apply(kubectl, tmp_path, moved)
    assert "may not change once set" in changed.err
    # Deleting the first frees its port for another Service.
    await kubectl("delete", "svc", "first")
    assert (await apply(kubectl, tmp_path, service("second", nodePort=31000))).rc == 0
