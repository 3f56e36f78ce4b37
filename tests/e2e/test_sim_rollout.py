"""Issue 3 point 11, end to end on `dpf-sim up`: a RollingUpdate of 12 emulated DPUs to a new BFB with
maxUnavailable "25%" never has more than 3 DPUs unavailable, and ends with all 12 Ready on the new BFB, each
BlueField activated exactly twice; narrowing the DPUSet's selector and deleting the DPUSet delete its DPUs.

The DPU OS stays on: a DPU reaches Ready only once its Node is Ready in the DPU cluster, which needs the DPU's own
dpfd to join it (with --no-dpu-os every DPU would wait in DPU Cluster Config for ever)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dpfd.sim.ports import free_port
from tests.e2e.simfleet import (
    DPU_ENABLED,
    OOB_BRIDGE,
    PCI_ADDRESS,
    PF0_NAME,
    Sim,
    bfb_url,
    example_docs,
    is_ready,
    kubectl,
    kubectl_json,
    wait_for,
    with_bfb_port,
    write_manifests,
)

HOSTS = 12
BUDGET = 3  # 25 % of 12
FLASH_SECONDS = 1.5
NAMESPACE = "dpf-operator-system"
RACK_LABEL = "topology.example.com/rack"
DPUS_PATH = f"/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/{NAMESPACE}/dpus"
V2 = "bf-bundle-v2"
V2_IMAGE = "bf-bundle-2.10.0-1_25.04_ubuntu-22.04_prod"

pytestmark = pytest.mark.timeout(600)


def _node(i: int) -> dict[str, Any]:
    name = f"worker-{i:02d}"
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                RACK_LABEL: "a" if i <= HOSTS // 2 else "b",
                DPU_ENABLED: "true",
                PCI_ADDRESS: "0000-03-00",
                PF0_NAME: "p0",
                OOB_BRIDGE: "true",
            },
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": f"198.51.100.{10 + i}"},
                {"type": "Hostname", "address": name},
            ]
        },
    }


def _manifests(port: int) -> list[dict[str, Any]]:
    """The examples' BFB, DPUFlavor, DPUCluster and DPUSet for 12 hosts, rolling 25 % at a time."""
    docs = [d for d in with_bfb_port(example_docs(), port) if d["kind"] != "Node"]
    for doc in docs:
        if doc["kind"] == "DPUCluster":
            doc["spec"]["maxNodes"] = HOSTS
        if doc["kind"] == "DPUSet":
            doc["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%"}}
    return docs + [_node(i) for i in range(1, HOSTS + 1)]


def _dpu_names() -> set[str]:
    return {f"worker-{i:02d}-0000-03-00" for i in range(1, HOSTS + 1)}


@dataclass
class Sample:
    resource_version: str
    unavailable: dict[str, str]  # DPU name -> why


@dataclass(eq=False)  # a Thread must stay hashable
class AvailabilitySampler(threading.Thread):
    """Follows the DPUs through the API (a list, then a watch from its resourceVersion) and samples after every
    event how many of the desired DPUs are unavailable: missing, being deleted, or not Ready."""

    base_url: str
    desired: set[str]
    samples: int = 0
    worst: Sample | None = None
    over_budget: list[Sample] = field(default_factory=list)
    uids: dict[str, list[str]] = field(default_factory=dict)  # DPU name -> each object's uid, in order seen
    error: BaseException | None = None
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread.__init__(self, name="dpu-availability-sampler", daemon=True)

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                rv = self._list()
                while rv is not None and not self.stopping.is_set():
                    rv = self._watch(rv)
        except BaseException as e:  # the test reports it
            self.error = e

    def _list(self) -> str:
        with urllib.request.urlopen(self.base_url + DPUS_PATH, timeout=10) as resp:
            listing = json.load(resp)
        self.objects = {}
        for obj in listing["items"]:
            self._see(obj)
        self._sample(listing["metadata"]["resourceVersion"])
        return str(listing["metadata"]["resourceVersion"])

    def _watch(self, rv: str) -> str | None:
        """One watch of at most a second; returns the resourceVersion to resume from, None to list again."""
        url = f"{self.base_url}{DPUS_PATH}?watch=true&resourceVersion={rv}&timeoutSeconds=1&allowWatchBookmarks=true"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                for line in resp:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        return None  # 410 Gone: list again
                    rv = obj["metadata"]["resourceVersion"]
                    if event["type"] == "BOOKMARK":
                        continue
                    if event["type"] == "DELETED":
                        self.objects.pop(obj["metadata"]["name"], None)
                    else:
                        self._see(obj)
                    self._sample(rv)
        except urllib.error.HTTPError as e:
            if e.code == 410:
                return None
            raise
        return rv

    def _see(self, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        self.objects[name] = obj
        uids = self.uids.setdefault(name, [])
        if obj["metadata"]["uid"] not in uids:
            uids.append(obj["metadata"]["uid"])

    def _sample(self, rv: str) -> None:
        unavailable = {}
        for name in sorted(self.desired):
            obj = self.objects.get(name)
            if obj is None:
                unavailable[name] = "missing"
            elif not is_ready(obj):
                deleting = obj["metadata"].get("deletionTimestamp")
                unavailable[name] = "deleting" if deleting else (obj.get("status") or {}).get("phase", "no phase")
        sample = Sample(rv, unavailable)
        self.samples += 1
        if self.worst is None or len(unavailable) > len(self.worst.unavailable):
            self.worst = sample
        if len(unavailable) > BUDGET:
            self.over_budget.append(sample)

    def stop(self) -> None:
        self.stopping.set()
        self.join(15)
        assert not self.is_alive(), "the sampler did not stop"
        if self.error is not None:
            raise AssertionError(f"the sampler failed: {self.error!r}") from self.error


@pytest.fixture
def rack_sim(tmp_path: Path) -> Iterator[Sim]:
    port = free_port()
    sim = Sim(tmp_path / "sim", write_manifests(tmp_path / "manifests", _manifests(port)), port, FLASH_SECONDS)
    sim.start()
    try:
        yield sim
    finally:
        sim.cleanup()


def _phases(sim: Sim) -> dict[str, str]:
    return {n: (d.get("status") or {}).get("phase", "-") for n, d in sim.dpus().items()}


def _wait_all_ready(sim: Sim, bfb: str, timeout: float) -> dict[str, dict[str, Any]]:
    def ready() -> dict[str, dict[str, Any]] | None:
        sim.check_running()
        dpus = sim.dpus()
        done = set(dpus) == _dpu_names() and all(is_ready(d) and d["spec"]["bfb"] == bfb for d in dpus.values())
        return dpus if done else None

    try:
        return wait_for(ready, timeout, f"{HOSTS} DPUs Ready on BFB {bfb}", poll=0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}\nphases now: {_phases(sim)}\n{sim.output()[-3000:]}") from None


def _activations(sim: Sim) -> dict[str, tuple[int, str]]:
    return {r["name"]: (r["activations"], r["running_version"]) for r in sim.status()}


def test_rolling_update_to_a_new_bfb_keeps_at_most_25_percent_unavailable(rack_sim: Sim) -> None:
    sim = rack_sim
    info = sim.wait_up(timeout=180)
    first = _wait_all_ready(sim, "bf-bundle", timeout=240)
    v1_file = f"{NAMESPACE}-bf-bundle.bfb"
    assert _activations(sim) == {n: (1, v1_file) for n in _dpu_names()}

    # The admin publishes BFB v2 (another image on the same server) and waits until the hosts have it.
    v2 = {
        "apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
        "kind": "BFB",
        "metadata": {"name": V2, "namespace": NAMESPACE},
        "spec": {"url": bfb_url(sim.bfb_port, V2_IMAGE)},
    }
    (sim.state / "bfb-v2.yaml").write_text(yaml.safe_dump(v2))
    applied = kubectl(sim.kubeconfig, "apply", "-f", str(sim.state / "bfb-v2.yaml"))
    assert applied.returncode == 0, applied.stderr
    wait_for(
        lambda: (
            kubectl_json(sim.kubeconfig, "get", "bfb", "-n", NAMESPACE, V2).get("status", {}).get("phase") == "Ready"
        ),
        60,
        f"BFB {V2} phase Ready",
    )

    sampler = AvailabilitySampler(info["kubeUrl"], _dpu_names())
    sampler.start()
    try:
        wait_for(lambda: sampler.samples > 0 or sampler.error, 10, "the sampler's first list")
        assert sampler.worst is not None and sampler.worst.unavailable == {}, sampler.worst
        patch = {"spec": {"dpuTemplate": {"spec": {"bfb": {"name": V2}}}}}
        out = kubectl(sim.kubeconfig, "patch", "dpuset", "-n", NAMESPACE, "dpuset", "--type", "merge",
                      "-p", json.dumps(patch))  # fmt: skip
        assert out.returncode == 0, out.stderr
        final = _wait_all_ready(sim, V2, timeout=240)
    finally:
        sampler.stop()

    assert sampler.over_budget == [], (
        f"more than {BUDGET} DPUs unavailable at {len(sampler.over_budget)} sampled moments, first: "
        f"{sampler.over_budget[0]}"
    )
    worst = sampler.worst
    # All 12 start Ready, so the first wave replaces a full budget's worth at once.
    assert worst is not None and len(worst.unavailable) == BUDGET, f"the rollout never used its budget: {worst}"
    # Every DPU was replaced exactly once: deleted and recreated from the new template.
    for name in _dpu_names():
        assert sampler.uids[name][0] == first[name]["metadata"]["uid"], f"DPU {name} changed before the rollout"
        assert sampler.uids[name][-1] == final[name]["metadata"]["uid"], f"DPU {name}: the sampler missed its last"
        assert len(sampler.uids[name]) == 2, f"DPU {name}: {len(sampler.uids[name])} objects seen, want 2"
    v2_file = f"{NAMESPACE}-{V2}.bfb"
    assert _activations(sim) == {n: (2, v2_file) for n in _dpu_names()}
    print(f"rollout: {sampler.samples} samples, at most {len(worst.unavailable)} unavailable: {worst.unavailable}")


def test_narrowing_the_selector_then_deleting_the_dpuset_deletes_its_dpus(rack_sim: Sim) -> None:
    sim = rack_sim
    info = sim.wait_up(timeout=180)
    first = _wait_all_ready(sim, "bf-bundle", timeout=240)

    # Only rack "a" stays selected: the DPUs of rack "b" go, those of rack "a" stay untouched.
    keep = {n for n in _dpu_names() if int(n.split("-")[1]) <= HOSTS // 2}
    patch = {"spec": {"nodeSelector": {"matchLabels": {DPU_ENABLED: "true", RACK_LABEL: "a"}}}}
    out = kubectl(sim.kubeconfig, "patch", "dpuset", "-n", NAMESPACE, "dpuset", "--type", "merge",
                  "-p", json.dumps(patch))  # fmt: skip
    assert out.returncode == 0, out.stderr
    wait_for(lambda: set(sim.dpus()) == keep, 90, f"only the DPUs {sorted(keep)}", poll=0.5)
    for name, dpu in sim.dpus().items():
        assert dpu["metadata"]["uid"] == first[name]["metadata"]["uid"], f"DPU {name} was replaced"
        assert is_ready(dpu), f"DPU {name}: phase {dpu.get('status', {}).get('phase')}"

    (cluster,) = info["dpuClusters"].values()

    def cluster_nodes() -> set[str]:
        return {n["metadata"]["name"] for n in kubectl_json(cluster["kubeconfig"], "get", "nodes")["items"]}

    # DPF's "Delete a DPU" also removes the DPU's Node from its DPU cluster.
    wait_for(lambda: cluster_nodes() == keep, 60, f"DPU cluster Nodes {sorted(keep)}")

    out = kubectl(sim.kubeconfig, "delete", "dpuset", "-n", NAMESPACE, "dpuset", "--wait=false")
    assert out.returncode == 0, out.stderr
    wait_for(lambda: not sim.dpus(), 90, "no DPUs once the DPUSet is deleted", poll=0.5)
    wait_for(
        lambda: not kubectl_json(sim.kubeconfig, "get", "dpusets", "-n", NAMESPACE)["items"],
        60,
        "the DPUSet gone (its finalizer removed)",
    )
    wait_for(lambda: cluster_nodes() == set(), 60, "no Nodes left in the DPU cluster")
