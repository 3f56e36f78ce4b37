"""Shared pieces of the controller integration tests: the emulated API, controller replicas, objects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio

from controller.app import RunConfig, run_controller
from controller.leader import LeaderElector
from controller.manager import Controller, ControllerOptions
from dpfd.api.crds import generate_crds
from dpfd.api.intents import ObjectRef, Report
from dpfd.sim.kubeapi import KubeApiServer
from dpfd.store import Store
from dpfd.store import keys as store_keys
from tests.waiting import eventually

NFD = "feature.node.kubernetes.io/"
NS = "dpf-operator-system"
PROV = "provisioning.dpu.nvidia.com/v1alpha1"


async def wait_until(cond: Callable[[], Any], within: float = 10.0, what: str = "condition") -> Any:
    return await eventually(cond, within, what)


@dataclass
class KubeEnv:
    server: KubeApiServer
    kubeconfig: Path

    def dpus(self) -> list[dict[str, Any]]:
        return self.server.objects(PROV, "DPU", NS)

    def dpu(self, name: str) -> dict[str, Any] | None:
        return self.server.get_object(PROV, "DPU", name, NS)

    def dpuset(self, name: str) -> dict[str, Any] | None:
        return self.server.get_object(PROV, "DPUSet", name, NS)


@pytest_asyncio.fixture
async def kube(tmp_path: Path) -> AsyncIterator[KubeEnv]:
    server = KubeApiServer()
    await server.start()
    await server.register_crds(generate_crds())
    kubeconfig = tmp_path / "kubeconfig"
    server.write_kubeconfig(kubeconfig)
    yield KubeEnv(server, kubeconfig)
    await server.stop()


@pytest_asyncio.fixture
async def store(etcd_endpoints: list[str]) -> AsyncIterator[Store]:
    s = await Store.connect(etcd_endpoints)
    yield s
    await s.close()


class Replica:
    """One controller replica running in this event loop."""

    def __init__(
        self,
        kube: KubeEnv,
        endpoints: list[str],
        identity: str,
        lease_ttl: float = 10.0,
        options: ControllerOptions | None = None,
    ) -> None:
        self.cfg = RunConfig(
            str(kube.kubeconfig), endpoints, identity, lease_ttl, options or ControllerOptions(events=False)
        )
        self.stop_event = asyncio.Event()
        self._electors: list[LeaderElector] = []
        self._controllers: list[Controller] = []
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Replica:
        self.task = asyncio.create_task(
            run_controller(self.cfg, self.stop_event, elector_out=self._electors, controller_out=self._controllers)
        )
        await wait_until(
            lambda: self._controllers or (self.task is not None and self.task.done()),
            10,
            f"replica {self.cfg.identity} started",
        )
        if self.task.done():
            self.task.result()
        await wait_until(self.controller.is_synced, 10, f"replica {self.cfg.identity} caches synced")
        return self

    @property
    def elector(self) -> LeaderElector:
        return self._electors[0]

    @property
    def controller(self) -> Controller:
        return self._controllers[0]

    async def stop(self) -> None:
        self.stop_event.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 15)


async def start_replica(
    kube: KubeEnv,
    endpoints: list[str],
    identity: str = "c1",
    lease_ttl: float = 10.0,
    options: ControllerOptions | None = None,
) -> Replica:
    replica = await Replica(kube, endpoints, identity, lease_ttl, options).start()
    return replica


def node_obj(name: str, *, pci: str = "0000-03-00", enabled: bool = True, ip: str = "10.0.0.1") -> dict[str, Any]:
    # "false" rather than no label: the emulated API's apply merges, so a removed label would stay.
    labels = {
        f"{NFD}dpu-0-pci-address": pci,
        f"{NFD}dpu-0-pf0-name": "ens1f0np0",
        f"{NFD}dpu-enabled": "true" if enabled else "false",
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
    }


def dpuset_obj(name: str = "dpuset-a", node_labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": PROV,
        "kind": "DPUSet",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "nodeSelector": {"matchLabels": {f"{NFD}dpu-enabled": "true"}},
            "strategy": {"type": "Recreate"},
            "dpuTemplate": {
                "annotations": {"example.com/note": "from-template"},
                "spec": {
                    "bfb": {"name": "bf-bundle"},
                    "dpuFlavor": "dpf-provisioning-hbn",
                    "nodeEffect": {"drain": {"automaticNodeReboot": True}},
                    "cluster": {"nodeLabels": node_labels or {"role": "worker"}},
                },
            },
        },
    }


async def intents(store: Store) -> dict[str, bytes]:
    kvs, _ = await store.get_prefix(store_keys.intents_prefix())
    return {kv.key: kv.value for kv in kvs}


async def write_report(store: Store, node: str, dpu: dict[str, Any], **fields: Any) -> None:
    ref = ObjectRef(kind="DPU", namespace=NS, name=dpu["metadata"]["name"])
    report = Report(node=node, ref=ref, uid=fields.pop("uid", dpu["metadata"]["uid"]), **fields)
    await store.put(store_keys.report_key(node, ref), report.model_dump_json())
