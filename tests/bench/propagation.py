"""Benchmark: a DPUSet spec change reaching 1,000 DPUs' reports, against the raw etcd baseline.

    python tests/bench/propagation.py [--dpus 1000] [--agent-procs 2]

Project run: real etcd, the emulated Kubernetes API (its own process), dpf-controller (its own process) and
1,000 real host NodeAgents (in --agent-procs processes, one Store each). A change of the DPUSet's template node
labels makes the controller patch every DPU (new metadata.generation) and publish new intents; each host dpfd
reports the new generation. Latency = time from the DPUSet update to each report carrying its DPU's new
generation, observed through an etcd watch on the reports.

Raw baseline, same run, same machine: the same number of intent puts in the same batching (128 per txn), the same
number of watchers split over the same number of processes, each answering with its own report put, as each
host's dpfd does; no Kubernetes, no project logic. Last line: JSON with p50_s, p99_s, raw_p99_s, ratio_vs_raw and more.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dpfd.sim.apply import RestApplier  # noqa: E402
from dpfd.sim.etcd import EtcdCluster  # noqa: E402
from dpfd.sim.ports import free_port  # noqa: E402
from dpfd.store import Put, Store  # noqa: E402
from dpfd.store import keys as K  # noqa: E402

NS = "dpf-operator-system"
PCI = "0000-03-00"
RAW = "/bench/raw/"
SHM = "/dev/shm"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def etcd_cpu(etcd: EtcdCluster) -> float:
    return sum(cpu_seconds(m.proc.pid) for m in etcd.members if m.proc is not None)


def etcd_ops(url: str) -> dict[str, float]:
    """Operation counters from etcd's own /metrics."""
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    wanted = ("etcd_mvcc_put_total", "etcd_mvcc_delete_total", "etcd_mvcc_range_total", "etcd_mvcc_txn_total",
              "etcd_debugging_mvcc_events_total", "etcd_disk_wal_fsync_duration_seconds_count")  # fmt: skip
    for line in text.splitlines():
        if line.startswith(wanted):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
        elif line.startswith("grpc_server_handled_total{"):
            method = line.split('grpc_method="', 1)[1].split('"', 1)[0]
            out[f"grpc_{method}"] = out.get(f"grpc_{method}", 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def ops_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, int]:
    return {k: int(after[k] - before.get(k, 0.0)) for k in sorted(after) if after[k] - before.get(k, 0.0) > 0}


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    s = sorted(samples)
    q = statistics.quantiles(s, n=100, method="inclusive")
    return round(q[49], 4), round(q[98], 4), round(s[-1], 4)


def spawn(argv: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as f:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=f, cwd=ROOT)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def wait_line(proc: subprocess.Popen[bytes], prefix: bytes, timeout: float, what: str) -> None:
    """Read the child's stdout until a line starts with `prefix` (the child says it is ready)."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(prefix):
            return
        if not line and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
    raise RuntimeError(f"{what} not ready within {timeout}s")


def node_name(i: int) -> str:
    return f"host-{i:04d}"


async def wait_reports(
    store: Store, prefix: str, want: dict[str, int], t0: float, deadline_s: float, field: str = "observedGeneration"
) -> dict[str, float]:
    """Seconds from t0 until each key in `want` carries `field` >= want[key]."""
    got: dict[str, float] = {}
    async with store.watch_prefix(prefix) as watch:
        async for ev in watch:
            kvs = list(ev.snapshot) if ev.type == "RESET" else ([ev.kv] if ev.type == "PUT" and ev.kv else [])
            now = time.monotonic()
            for kv in kvs:
                need = want.get(kv.key)
                if need is None or kv.key in got:
                    continue
                if json.loads(kv.value).get(field, 0) >= need:
                    got[kv.key] = now - t0
            if len(got) == len(want) or now - t0 > deadline_s:
                return got
    return got


# ---------------------------------------------------------------------------------------------- project run


async def project_run(args: argparse.Namespace, work: Path, etcd: EtcdCluster) -> dict[str, Any]:
    n = args.dpus
    endpoints = ",".join(etcd.endpoints)
    port = free_port()
    kubeconfig = work / "host.kubeconfig"
    procs: list[subprocess.Popen[bytes]] = []
    # The simulated hosts' state dirs live on tmpfs, standing in for 1,000 hosts' own disks: on this VM's one
    # ext4 disk (mounted with discard) replacing a small file costs about 0.5 ms of kernel time, and 1,000 hosts
    # sharing it would make this a benchmark of that disk.
    hosts_dir = Path(tempfile.mkdtemp(prefix="dpf-bench-hosts-", dir=SHM if os.path.isdir(SHM) else None))
    try:
        kube = spawn([sys.executable, "-m", "dpfd.sim.kubeapi", "--port", str(port), "--kubeconfig", str(kubeconfig)],
                     work / "kubeapi.log")  # fmt: skip
        procs.append(kube)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            await _wait_http(http, base + "/version")
            applier = RestApplier(http, base)
            from dpfd.api.crds import generate_crds

            for crd in generate_crds():
                await applier.apply(crd)
            await _wait_served(applier)
            await applier.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
            sem = asyncio.Semaphore(32)

            async def make_node(i: int) -> None:
                async with sem:
                    await applier.apply(_node(node_name(i)))

            await asyncio.gather(*(make_node(i) for i in range(n)))
            await applier.apply(_dpuset())
            log(f"created {n} Nodes and a DPUSet")

            for part, nodes in enumerate(_split([node_name(i) for i in range(n)], args.agent_procs)):
                nodes_file = work / f"agents-{part}.txt"
                nodes_file.write_text("\n".join(nodes))
                p = spawn([sys.executable, "-m", "dpfd.sim.agents", "--etcd", endpoints, "--state-dir",
                           str(hosts_dir), "--nodes-file", str(nodes_file)], work / f"agents-{part}.log")  # fmt: skip
                procs.append(p)
            for i, p in enumerate(procs[1:]):
                wait_line(p, b"ready", 120, f"agent process {i}")
            log(f"{n} host agents ready in {args.agent_procs} processes")
            controller = spawn([sys.executable, "-m", "controller.main", "run", "--kubeconfig", str(kubeconfig),
                                "--etcd-endpoints", endpoints, "--id", "bench"], work / "controller.log")  # fmt: skip
            procs.append(controller)

            report_keys = [K.report_key(node_name(i), _dpu_ref(i)) for i in range(n)]
            intent_keys = [K.intent_key(node_name(i), _dpu_ref(i)) for i in range(n)]
            async with await Store.connect(etcd.endpoints) as store:
                t_start = time.monotonic()
                first = await wait_reports(store, K.reports_prefix(), dict.fromkeys(report_keys, 1), t_start, 300)
                if len(first) < n:
                    raise RuntimeError(f"only {len(first)}/{n} DPUs reported within 300 s")
                log(f"initial rollout: {n} DPUs created and reported in {max(first.values()):.2f}s")

                def usage() -> dict[str, float]:
                    return {"controller": cpu_seconds(controller.pid), "kubeapi": cpu_seconds(kube.pid),
                            "agents": sum(cpu_seconds(p.pid) for p in procs[1:-1]), "etcd": etcd_cpu(etcd),
                            **etcd_ops(etcd.endpoints[0])}  # fmt: skip

                latencies: list[float] = []
                intent_latencies: list[float] = []
                round_p99: list[float] = []
                spent: dict[str, float] = {}
                for rnd in range(1, args.rounds + 1):
                    generation = rnd + 1  # each round's template change bumps every DPU's generation by one
                    await _wait_status_settled(http, base, n)  # measure from a quiet system
                    before = usage()
                    t0 = time.monotonic()
                    patch = {
                        "spec": {"dpuTemplate": {"spec": {"cluster": {"nodeLabels": {"bench.dpf.io/round": str(rnd)}}}}}
                    }
                    async with http.patch(f"{base}/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/{NS}/dpusets/bench",
                                          data=json.dumps(patch), headers={"Content-Type": "application/merge-patch+json"}) as r:  # fmt: skip
                        assert r.status == 200, await r.text()
                    intents_seen = asyncio.create_task(
                        wait_reports(
                            store, K.intents_prefix(), dict.fromkeys(intent_keys, generation), t0, 120, "generation"
                        )
                    )
                    got = await wait_reports(store, K.reports_prefix(), dict.fromkeys(report_keys, generation), t0, 120)
                    intents = await intents_seen
                    after = usage()
                    if len(got) < n:
                        raise RuntimeError(f"round {rnd}: only {len(got)}/{n} reports carried generation {generation}")
                    latencies += got.values()
                    intent_latencies += intents.values()
                    round_p99.append(percentiles(list(got.values()))[1])
                    for k, v in after.items():
                        spent[k] = spent.get(k, 0.0) + v - before.get(k, 0.0)
                    log(f"round {rnd}: p99 {round_p99[-1]}s")
            p50, p99, mx = percentiles(latencies)
            intent_p50, intent_p99, _ = percentiles(intent_latencies)
            per_round = {k: v / args.rounds for k, v in spent.items()}
            return {"p50_s": p50, "p99_s": p99, "max_s": mx, "round_p99_s": round_p99,
                    "intent_p50_s": intent_p50, "intent_p99_s": intent_p99,
                    **{f"{k}_cpu_s": round(per_round.pop(k), 3) for k in ("controller", "kubeapi", "agents", "etcd")},
                    "etcd_ops": {k: int(v) for k, v in sorted(per_round.items()) if v > 0}}  # fmt: skip
    finally:
        stop(procs[::-1])
        shutil.rmtree(hosts_dir, ignore_errors=True)


def _dpu_ref(i: int) -> Any:
    from dpfd.api.intents import ObjectRef

    return ObjectRef(kind="DPU", namespace=NS, name=f"{node_name(i)}-{PCI}")


def _node(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {
            "feature.node.kubernetes.io/dpu-enabled": "true",
            "feature.node.kubernetes.io/dpu-0-pci-address": PCI,
            "feature.node.kubernetes.io/dpu-0-pf0-name": "p0",
            "feature.node.kubernetes.io/dpu-oob-bridge-configured": "true"}},
        "status": {"addresses": [{"type": "InternalIP", "address": "198.51.100.10"}]},
    }  # fmt: skip


def _dpuset() -> dict[str, Any]:
    return {
        "apiVersion": "provisioning.dpu.nvidia.com/v1alpha1",
        "kind": "DPUSet",
        "metadata": {"name": "bench", "namespace": NS},
        "spec": {
            "nodeSelector": {"matchLabels": {"feature.node.kubernetes.io/dpu-enabled": "true"}},
            "dpuTemplate": {"spec": {"bfb": {"name": "bf-bundle"}, "dpuFlavor": "flavor",
                                     "nodeEffect": {"noEffect": True}}},
        },
    }  # fmt: skip


async def _wait_status_settled(http: aiohttp.ClientSession, base: str, n: int) -> None:
    """Until every DPU's status has caught up with its generation (the controller's write-back is done)."""
    deadline = time.monotonic() + 60
    url = f"{base}/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/{NS}/dpus"
    while True:
        async with http.get(url) as r:
            items = (await r.json())["items"]
        settled = [d for d in items if d.get("status", {}).get("observedGeneration") == d["metadata"]["generation"]]
        if len(settled) == n:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(settled)}/{n} DPU statuses caught up within 60 s")
        await asyncio.sleep(0.1)


async def _wait_http(http: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            async with http.get(url) as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer")
        await asyncio.sleep(0.05)


async def _wait_served(applier: RestApplier) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            await applier.resource("provisioning.dpu.nvidia.com/v1alpha1", "DPUSet")
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def _split(items: list[str], parts: int) -> list[list[str]]:
    return [items[i::parts] for i in range(parts)]


# ---------------------------------------------------------------------------------------------- raw baseline


async def raw_agents(endpoints: list[str], nodes: list[str]) -> None:
    """The baseline's watchers: one watch per node; each intent put is answered by that node's own report put,
    as each host's dpfd writes its own report."""
    async with await Store.connect(endpoints) as store:
        opened = 0
        all_open = asyncio.Event()

        async def watch(node: str) -> None:
            nonlocal opened
            async with store.watch_prefix(f"{RAW}intents/{node}/") as w:
                async for ev in w:
                    if ev.type == "RESET":  # the list part of list+watch: this watcher is live
                        opened += 1
                        if opened == len(nodes):
                            all_open.set()
                    elif ev.type == "PUT" and ev.kv is not None:
                        gen = json.loads(ev.kv.value)["generation"]
                        await store.put(f"{RAW}reports/{node}/dpu", json.dumps({"observedGeneration": gen}))

        tasks = [asyncio.create_task(watch(n)) for n in nodes]
        await all_open.wait()
        print("ready", flush=True)
        await asyncio.gather(*tasks)


async def raw_run(args: argparse.Namespace, work: Path, etcd: EtcdCluster) -> dict[str, Any]:
    n = args.dpus
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for part, nodes in enumerate(_split([node_name(i) for i in range(n)], args.agent_procs)):
            nodes_file = work / f"raw-{part}.txt"
            nodes_file.write_text("\n".join(nodes))
            procs.append(spawn([sys.executable, __file__, "--raw-agents", str(nodes_file), "--etcd",
                                ",".join(etcd.endpoints)], work / f"raw-{part}.log"))  # fmt: skip
        for i, p in enumerate(procs):
            wait_line(p, b"ready", 60, f"raw agent process {i}")
        latencies: list[float] = []
        round_p99: list[float] = []
        spent = [0.0, 0.0]
        ops: dict[str, float] = {}
        async with await Store.connect(etcd.endpoints) as store, await Store.connect(etcd.endpoints) as other:
            for rnd in range(1, args.rounds + 1):
                generation = rnd + 1
                intent = json.dumps({"generation": generation, "spec": {"pad": "x" * 600}}).encode()  # intent-sized
                reports = {f"{RAW}reports/{node_name(i)}/dpu": generation for i in range(n)}
                intents = {f"{RAW}intents/{node_name(i)}/dpu": generation for i in range(n)}
                ops0 = etcd_ops(etcd.endpoints[0])
                cpu0 = sum(cpu_seconds(p.pid) for p in procs), etcd_cpu(etcd)
                t0 = time.monotonic()
                waiter = asyncio.create_task(wait_reports(store, f"{RAW}reports/", reports, t0, 60))
                # The same watch deliveries as the project run: its controller also watches the reports (here a
                # second client), and the project run watches the intents to time them.
                extra = [
                    asyncio.create_task(wait_reports(other, f"{RAW}reports/", reports, t0, 60)),
                    asyncio.create_task(wait_reports(store, f"{RAW}intents/", intents, t0, 60, "generation")),
                ]
                await store.commit([Put(key, intent) for key in intents])
                got = await waiter
                await asyncio.gather(*extra)
                ops1 = etcd_ops(etcd.endpoints[0])
                cpu1 = sum(cpu_seconds(p.pid) for p in procs), etcd_cpu(etcd)
                if len(got) < n:
                    raise RuntimeError(f"raw baseline round {rnd}: only {len(got)}/{n} reports within 60 s")
                latencies += got.values()
                round_p99.append(percentiles(list(got.values()))[1])
                spent = [spent[0] + cpu1[0] - cpu0[0], spent[1] + cpu1[1] - cpu0[1]]
                for k, v in ops1.items():
                    ops[k] = ops.get(k, 0.0) + v - ops0.get(k, 0.0)
        p50, p99, mx = percentiles(latencies)
        return {
            "raw_p50_s": p50,
            "raw_p99_s": p99,
            "raw_max_s": mx,
            "raw_round_p99_s": round_p99,
            "raw_agents_cpu_s": round(spent[0] / args.rounds, 3),
            "raw_etcd_cpu_s": round(spent[1] / args.rounds, 3),
            "raw_etcd_ops": {k: int(v / args.rounds) for k, v in sorted(ops.items()) if v > 0},
        }
    finally:
        stop(procs)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="dpf-bench-") as tmp:
        work = Path(args.work_dir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        with EtcdCluster(work / "etcd", size=1) as etcd:
            log(f"etcd at {etcd.endpoints[0]}")
            project = await project_run(args, work, etcd)
            log(f"project: p50 {project['p50_s']}s p99 {project['p99_s']}s")
            raw = await raw_run(args, work, etcd)
            log(f"raw: p50 {raw['raw_p50_s']}s p99 {raw['raw_p99_s']}s")
    result = {"benchmark": "propagation", "dpus": args.dpus, "agent_processes": args.agent_procs,
              **project, **raw, "ratio_vs_raw": round(project["p99_s"] / raw["raw_p99_s"], 2)}  # fmt: skip
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dpus", type=int, default=1000)
    parser.add_argument("--agent-procs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="DPUSet changes (and raw rounds) to pool")
    parser.add_argument("--work-dir", type=Path, help="keep logs and state here instead of a temporary folder")
    parser.add_argument("--raw-agents", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--etcd", help=argparse.SUPPRESS)
    args = parser.parse_args()
    import uvloop

    if args.raw_agents:
        nodes = [x for x in args.raw_agents.read_text().splitlines() if x]
        uvloop.run(raw_agents(args.etcd.split(","), nodes))
        return 0
    result = uvloop.run(main_async(args))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
