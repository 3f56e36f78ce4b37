"""The emulated API through the real kubectl binary, as users and the end-to-end tests use it."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import yaml
from kubeapi_harness import DPU_API, DPU_CRD, dpu

from dpfd.sim.kubeapi import KubeApiServer


def manifest(*objs: dict[str, Any]) -> str:
    return yaml.safe_dump_all(objs, sort_keys=False)


def table(out: str) -> list[list[str]]:
    return [line.split() for line in out.strip().splitlines()]


async def test_apply_crd_then_objects_and_edit_them(kubeapi: KubeApiServer, kubectl: Any, tmp_path: Path) -> None:
    crd_file = tmp_path / "crd.yaml"
    crd_file.write_text(manifest(DPU_CRD))
    assert "created" in (await kubectl("apply", "-f", str(crd_file))).out

    await kubectl("create", "namespace", "lab")  # a protobuf body, as kubectl's typed commands send
    objs = tmp_path / "dpus.yaml"
    objs.write_text(manifest(dpu("dpu-a", "host-a"), dpu("dpu-b", "host-b", namespace="lab")))
    applied = await kubectl("apply", "-f", str(objs))
    assert applied.out.splitlines() == [
        "dpu.provisioning.dpu.nvidia.com/dpu-a created",
        "dpu.provisioning.dpu.nvidia.com/dpu-b created",
    ]
    await kubeapi.apply_status({"apiVersion": DPU_API, "kind": "DPU", "metadata": {"name": "dpu-a"},
                                "status": {"phase": "Ready"}})  # fmt: skip

    rows = table((await kubectl("get", "dpus", "-A")).out)
    assert rows[0] == ["NAMESPACE", "NAME", "NODE", "PHASE", "AGE"]
    assert rows[1][:4] == ["default", "dpu-a", "host-a", "Ready"]
    assert rows[2][:3] == ["lab", "dpu-b", "host-b"] and len(rows[2]) == 4  # no phase yet: an empty cell
    assert table((await kubectl("get", "dpu", "dpu-a")).out)[1][:3] == ["dpu-a", "host-a", "Ready"]  # short name

    as_json = json.loads((await kubectl("get", "dpu", "dpu-a", "-o", "json")).out)
    assert as_json["spec"] == {"nodeName": "host-a", "bfb": "bf-bundle"}
    assert as_json["metadata"]["generation"] == 1

    # re-apply after a change: kubectl computes a merge patch from its last-applied annotation
    objs.write_text(manifest(dpu("dpu-a", "host-z"), dpu("dpu-b", "host-b", namespace="lab")))
    reapplied = await kubectl("apply", "-f", str(objs))
    assert reapplied.out.splitlines() == [
        "dpu.provisioning.dpu.nvidia.com/dpu-a configured",
        "dpu.provisioning.dpu.nvidia.com/dpu-b unchanged",
    ]
    changed = kubeapi.get_object(DPU_API, "DPU", "dpu-a")
    assert changed is not None
    assert changed["spec"]["nodeName"] == "host-z" and changed["metadata"]["generation"] == 2
    assert changed["status"] == {"phase": "Ready"}

    await kubectl("label", "dpu", "dpu-a", "rack=r1")
    await kubectl("annotate", "dpu", "dpu-a", "note=hello")
    await kubectl("patch", "dpu", "dpu-a", "--type", "merge", "-p", '{"spec":{"bfb":"other"}}')
    await kubectl("patch", "dpu", "dpu-a", "--type", "json", "-p",
                  '[{"op":"replace","path":"/spec/nodeName","value":"host-j"}]')  # fmt: skip
    edited = kubeapi.get_object(DPU_API, "DPU", "dpu-a")
    assert edited is not None
    assert edited["metadata"]["labels"] == {"rack": "r1"}
    assert edited["metadata"]["annotations"]["note"] == "hello"
    assert edited["spec"] == {"nodeName": "host-j", "bfb": "other"}
    assert table((await kubectl("get", "dpus", "-l", "rack=r1", "-o", "name")).out) == [
        ["dpu.provisioning.dpu.nvidia.com/dpu-a"]
    ]

    assert "deleted" in (await kubectl("delete", "dpu", "dpu-b", "-n", "lab")).out
    assert kubeapi.objects(DPU_API, "DPU", namespace="lab") == []
    missing = await kubectl("get", "dpu", "dpu-b", "-n", "lab", check=False)
    assert missing.rc != 0
    assert 'dpus.provisioning.dpu.nvidia.com "dpu-b" not found' in missing.err


async def test_discovery_describe_and_explain(with_dpu_crd: KubeApiServer, kubectl: Any) -> None:
    resources = table((await kubectl("api-resources")).out)
    by_name = {(r[0], r[-3]): r for r in resources[1:]}
    assert by_name[("dpus", DPU_API)] == ["dpus", "dpu", DPU_API, "true", "DPU"]
    assert by_name[("nodes", "v1")] == ["nodes", "no", "v1", "false", "Node"]
    assert ("leases", "coordination.k8s.io/v1") in by_name

    d1 = await with_dpu_crd.apply_object(dpu("d1", "host-1"))
    ref = {"kind": "DPU", "namespace": "default", "name": "d1", "uid": d1["metadata"]["uid"], "apiVersion": DPU_API}
    for name, target in (("ev-d1", ref), ("ev-other", {**ref, "name": "d2"})):
        await with_dpu_crd.apply_object({"apiVersion": "v1", "kind": "Event", "metadata": {"name": name},
                                         "involvedObject": target, "reason": f"Reason-{name}", "type": "Normal",
                                         "message": "phase changed", "count": 1})  # fmt: skip
    described = (await kubectl("describe", "dpu", "d1")).out
    assert "Name:         d1" in described and "Node Name:  host-1" in described
    assert "Reason-ev-d1" in described and "Reason-ev-other" not in described  # events by involvedObject

    explained = (await kubectl("explain", "dpus.spec")).out
    assert "Desired state of the DPU." in explained and "The host the DPU is in." in explained


async def test_invalid_object_prints_the_validator_lines(kubeconfig: Path, tmp_path: Path) -> None:
    class Problem:
        def __init__(self, line: str) -> None:
            self.line = line

        def format(self) -> str:
            return self.line

    class RejectBadBfb:
        def apply_defaults(self, obj: dict[str, Any]) -> dict[str, Any]:
            return obj

        def validate_object(self, obj: dict[str, Any]) -> list[Problem]:
            if obj.get("spec", {}).get("bfb") != "bad":
                return []
            who = f"DPU {obj['metadata']['namespace']}/{obj['metadata']['name']}"
            return [Problem(f"{who}: spec.bfb: BFB 'bad' does not exist"), Problem(f"{who}: spec.nodeName: bad")]

        def validate_update(self, old: dict[str, Any], new: dict[str, Any]) -> list[Problem]:
            return self.validate_object(new)

    server = KubeApiServer(validation=RejectBadBfb())
    await server.start()
    try:
        await server.register_crds([DPU_CRD])
        config = tmp_path / "strict.kubeconfig"
        server.write_kubeconfig(config)
        bad = tmp_path / "bad.yaml"
        bad.write_text(manifest(dpu("bad-one", "host-1", bfb="bad")))
        env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
        proc = await asyncio.create_subprocess_exec(
            "kubectl", "--kubeconfig", str(config), "apply", "-f", str(bad),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        assert proc.returncode != 0
        lines = err.decode().splitlines()
        # what dpf-controller validate would print, line for line, after kubectl's own prefix
        assert lines[0].endswith("DPU default/bad-one: spec.bfb: BFB 'bad' does not exist")
        assert lines[1] == "DPU default/bad-one: spec.nodeName: bad"
        assert server.objects(DPU_API, "DPU") == []
    finally:
        await server.stop()


async def test_get_watch_follows_changes(with_dpu_crd: KubeApiServer, kubeconfig: Path, tmp_path: Path) -> None:
    await with_dpu_crd.apply_object(dpu("w1", "host-1"))
    env = {**os.environ, "KUBECACHEDIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        "kubectl", "--kubeconfig", str(kubeconfig), "get", "dpus", "-w",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        header = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().split()
        first = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().split()
        assert header == ["NAME", "NODE", "PHASE", "AGE"] and first[:2] == ["w1", "host-1"]
        await with_dpu_crd.apply_status({"apiVersion": DPU_API, "kind": "DPU", "metadata": {"name": "w1"},
                                         "status": {"phase": "Ready"}})  # fmt: skip
        update = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().split()
        assert update[:3] == ["w1", "host-1", "Ready"]
    finally:
        proc.terminate()
        await proc.wait()


async def test_builtin_kinds(kubeapi: KubeApiServer, kubectl: Any, tmp_path: Path) -> None:
    nodes = tmp_path / "nodes.yaml"
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "host-1", "labels": {"node-role.kubernetes.io/worker": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0"}}}  # fmt: skip
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "1"}}
    nodes.write_text(manifest(node, cm))
    await kubectl("apply", "-f", str(nodes))
    rows = table((await kubectl("get", "nodes")).out)
    assert rows[1][:3] == ["host-1", "Ready", "worker"] and rows[1][-1] == "v1.32.0"

    cm["data"] = {"a": "2", "b": "3"}
    nodes.write_text(manifest(node, cm))
    applied = await kubectl("apply", "-f", str(nodes))  # a strategic merge patch for a built-in kind
    assert "configmap/cfg configured" in applied.out and applied.err == ""
    assert kubeapi.objects("v1", "ConfigMap")[0]["data"] == {"a": "2", "b": "3"}

    await kubectl("create", "secret", "generic", "creds", "--from-literal=token=s3cret")
    secret = json.loads((await kubectl("get", "secret", "creds", "-o", "json")).out)
    assert secret["data"] == {"token": "czNjcmV0"} and secret["type"] == "Opaque"

    await kubectl("cordon", "host-1")
    cordoned = kubeapi.get_object("v1", "Node", "host-1")
    assert cordoned is not None and cordoned["spec"]["unschedulable"] is True
    assert "Ready,SchedulingDisabled" in (await kubectl("get", "node", "host-1")).out

    await kubectl("delete", "configmap", "cfg")
    assert kubeapi.objects("v1", "ConfigMap") == []


async def test_reapply_merges_builtin_lists_by_key(kubeapi: KubeApiServer, kubectl: Any, tmp_path: Path) -> None:
    def pod(image_a: str, finalizer: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "finalizers": ["keep", finalizer]},
                "spec": {"nodeName": "host-1", "containers": [{"name": "a", "image": image_a},
                                                              {"name": "b", "image": "b:1"}]}}  # fmt: skip

    path = tmp_path / "pod.yaml"
    path.write_text(manifest(pod("a:1", "one")))
    await kubectl("apply", "-f", str(path))
    path.write_text(manifest(pod("a:2", "two")))
    assert "pod/p configured" in (await kubectl("apply", "-f", str(path))).out
    live = kubeapi.get_object("v1", "Pod", "p")
    assert live is not None
    assert live["spec"]["containers"] == [{"name": "a", "image": "a:2"}, {"name": "b", "image": "b:1"}]
    assert live["metadata"]["finalizers"] == ["keep", "two"]
