"""Benchmark: a rolling BFB update of 100 emulated DPUs against its ideal, and OS.Install streaming against raw gRPC.

    python tests/bench/provision.py [--dpus 100] [--flash-seconds 20] [--max-unavailable 10%] [--agent-procs 2]

Rollout: the whole system as dpf-sim runs it (real etcd, the emulated host and DPU-cluster APIs, the synthetic BFB
server, the rack of emulated BlueFields, dpf-controller), except that the 100 host dpfds run as real NodeAgents with
the host role's full reconcilers in --agent-procs processes (100 Python processes would measure this 2-core
machine's CPU, not dpf), and each flashed DPU boots only its dpfd's cluster join (the rack's join-only DPU OS). An
emulated BlueField takes T = --flash-seconds per flash (80 % streaming the image to its DMS at a paced rate, 20 %
its reboot); the host's reboot is emulated as instant. All DPUs are first provisioned on BFB v1 (not timed); then
the DPUSet moves to BFB v2 and the clock runs until every DPU is Ready on v2. With maxUnavailable M of N DPUs the
ideal is ceil(N / M) waves of T: `overhead_ratio` = wall time / (waves x T), target <= 1.1. A sampler checks that
no more than M DPUs are ever unavailable (`max_unavailable_seen`).

Streaming: tests/bench/dms_stream.py in the same run (our DMS client and emulated DMS vs a raw grpc.aio stream
of the same bytes and chunk size into a server doing the same integrity check) -> `stream_ratio_vs_raw`, target
>= 0.8; `stream_ratio_vs_raw_count_only` against a server that only counts the bytes (see dms_stream.py for why).

The last line is JSON with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dms_stream  # noqa: E402

from dpfd.sim.fleet import Fleet, FleetOptions  # noqa: E402
from dpfd.sim.ports import free_port  # noqa: E402
from dpfd.sim.processes import python_module  # noqa: E402
from dpfd.sim.rack import HostPlan  # noqa: E402
from dpfd.sim.rack_plan import host_dpfd_config  # noqa: E402

NS = "dpf-operator-system"
PCI = "0000-03-00"
DPUS_PATH = f"/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/{NS}/dpus"
DPUSET_PATH = f"/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/{NS}/dpusets/bench"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------- manifests


def manifests(n: int, bfb_port: int, max_unavailable: str) -> list[dict[str, Any]]:
    objs: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}}]
    for i in range(n):
        name = f"host-{i:03d}"
        objs.append({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "feature.node.kubernetes.io/dpu-enabled": "true",
                "feature.node.kubernetes.io/dpu-0-pci-address": PCI,
                "feature.node.kubernetes.io/dpu-0-pf0-name": "p0",
            }},
            "status": {"addresses": [{"type": "InternalIP", "address": f"198.51.100.{10 + i % 240}"}]},
        })  # fmt: skip
    group = "provisioning.dpu.nvidia.com/v1alpha1"
    for version in ("v1", "v2"):
        objs.append({"apiVersion": group, "kind": "BFB", "metadata": {"name": f"bf-bundle-{version}", "namespace": NS},
                     "spec": {"url": f"http://127.0.0.1:{bfb_port}/bf-bundle-{version}.bfb"}})  # fmt: skip
    objs.append({"apiVersion": group, "kind": "DPUFlavor", "metadata": {"name": "bench", "namespace": NS},
                 "spec": {"grub": {"kernelParameters": ["console=hvc0"]}}})  # fmt: skip
    objs.append({"apiVersion": group, "kind": "DPUCluster", "metadata": {"name": "bench-cplane", "namespace": NS},
                 "spec": {"type": "static", "maxNodes": n + 10, "version": "v1.30.2",
                          "kubeconfig": "bench-cplane-admin-conf"}})  # fmt: skip
    objs.append({
        "apiVersion": group, "kind": "DPUSet", "metadata": {"name": "bench", "namespace": NS},
        "spec": {
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": _int_or_percent(max_unavailable)}},
            "nodeSelector": {"matchLabels": {"feature.node.kubernetes.io/dpu-enabled": "true"}},
            "dpuSelector": {"feature.node.kubernetes.io/dpu-0-pci-address": PCI},
            "dpuTemplate": {"spec": {"dpuFlavor": "bench", "bfb": {"name": "bf-bundle-v1"},
                                     "nodeEffect": {"noEffect": True}, "automaticNodeReboot": True}},
        },
    })  # fmt: skip
    return objs


def _int_or_percent(text: str) -> int | str:
    return text if text.endswith("%") else int(text)


def budget(n: int, max_unavailable: str) -> int:
    """DPF's rounding of maxUnavailable: a percent of the DPUs rounded up, at least 1."""
    if max_unavailable.endswith("%"):
        return max(1, math.ceil(n * float(max_unavailable[:-1]) / 100))
    return max(1, int(max_unavailable))


# ---------------------------------------------------------------------------------------------- the fleet


class BenchFleet(Fleet):
    """dpf-sim's fleet, with the host dpfds' configs collected for a few agent processes instead of a process each."""

    def __init__(self, manifests_dir: Path, state_dir: Path, options: FleetOptions, agent_procs: int) -> None:
        super().__init__(manifests_dir, state_dir, quiet=True, options=options)
        self.agent_procs = agent_procs
        self.configs: list[dict[str, Any]] = []

    def start_host(self, host: HostPlan, endpoints: list[str]) -> None:
        config = host_dpfd_config(host, endpoints, self.state_dir / "hosts" / host.node, self.options.flash_seconds)
        prov = config["provisioning"]
        prov["hostPower"]["emulated"]["rebootSeconds"] = 0.0  # T is the BlueField's time; the host reboots at once
        prov["dms"]["rebootPoll"] = 0.2
        self.configs.append(config)

    async def start_agents(self) -> None:
        for part in range(self.agent_procs):
            folder = self.state_dir / f"agents-{part}"
            folder.mkdir(parents=True, exist_ok=True)
            for config in self.configs[part :: self.agent_procs]:
                (folder / f"{config['node']}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
            endpoints = ",".join(self.info["etcdEndpoints"])
            self.processes.spawn(f"agents-{part}", python_module("dpfd.sim.agents", "--etcd", endpoints,
                                                                 "--configs-dir", str(folder)))  # fmt: skip
        log_paths = [self.state_dir / "logs" / f"agents-{part}.log" for part in range(self.agent_procs)]
        deadline = time.monotonic() + 180
        while not all(_has_line(p, "ready ") for p in log_paths):
            for name, code in self.processes.exited():
                raise RuntimeError(f"{name} exited with {code}; see {self.state_dir}/logs/{name}.log")
            if time.monotonic() > deadline:
                raise RuntimeError("agent processes not ready within 180 s")
            await asyncio.sleep(0.2)


def _has_line(path: Path, prefix: str) -> bool:
    try:
        return any(line.startswith(prefix) for line in path.read_text(errors="replace").splitlines())
    except FileNotFoundError:
        return False


# ---------------------------------------------------------------------------------------------- measuring


def ready_on(dpu: dict[str, Any], bfb: str) -> bool:
    meta, spec, status = dpu.get("metadata", {}), dpu.get("spec", {}), dpu.get("status", {})
    return not meta.get("deletionTimestamp") and spec.get("bfb") == bfb and status.get("phase") == "Ready"


async def list_dpus(http: aiohttp.ClientSession, base: str) -> list[dict[str, Any]]:
    async with http.get(base + DPUS_PATH) as resp:
        resp.raise_for_status()
        items: list[dict[str, Any]] = (await resp.json())["items"]
        return items


class PhaseClock:
    """Time each DPU incarnation spends in each phase, from the sampler's view (100 ms resolution)."""

    def __init__(self) -> None:
        self.current: dict[str, tuple[str, float]] = {}  # uid -> (phase, since)
        self.spent: dict[str, list[float]] = {}

    def observe(self, dpus: list[dict[str, Any]], now: float) -> None:
        seen = set()
        for d in dpus:
            meta = d.get("metadata", {})
            uid = str(meta.get("uid"))
            seen.add(uid)
            phase = "Deleting" if meta.get("deletionTimestamp") else str(d.get("status", {}).get("phase") or "-")
            self._enter(uid, phase, now)
        for uid in [u for u in self.current if u not in seen]:
            self._enter(uid, "", now)  # gone
            del self.current[uid]

    def _enter(self, uid: str, phase: str, now: float) -> None:
        before = self.current.get(uid)
        if before is not None and before[0] == phase:
            return
        if before is not None and before[0] != "Ready":
            self.spent.setdefault(before[0], []).append(now - before[1])
        self.current[uid] = (phase, now)

    def means(self) -> dict[str, float]:
        return {phase: round(sum(v) / len(v), 2) for phase, v in self.spent.items() if v}


async def wait_all_ready(
    http: aiohttp.ClientSession, base: str, n: int, bfb: str, within: float, clock: PhaseClock | None = None
) -> tuple[float, int]:
    """Seconds until all `n` DPUs are Ready on `bfb`, and the most unavailable at any sample (every 100 ms)."""
    t0 = time.monotonic()
    worst = 0
    while True:
        dpus = await list_dpus(http, base)
        now = time.monotonic()
        if clock is not None:
            clock.observe(dpus, now)
        ready = sum(1 for d in dpus if d.get("status", {}).get("phase") == "Ready" and not
                    d.get("metadata", {}).get("deletionTimestamp"))  # fmt: skip
        worst = max(worst, n - ready)
        if sum(1 for d in dpus if ready_on(d, bfb)) == n:
            return now - t0, worst
        if now - t0 > within:
            phases: dict[str, int] = {}
            for d in dpus:
                key = f"{d.get('spec', {}).get('bfb')}:{d.get('status', {}).get('phase')}"
                phases[key] = phases.get(key, 0) + 1
            raise RuntimeError(f"not all {n} DPUs Ready on {bfb} within {within:g}s: {phases}")
        await asyncio.sleep(0.1)


async def rollout(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n = args.dpus
    bfb_port = free_port()
    manifests_dir = work / "manifests"
    manifests_dir.mkdir()
    docs = manifests(n, bfb_port, args.max_unavailable)
    (manifests_dir / "bench.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
    options = FleetOptions(bfb_port=bfb_port, flash_seconds=args.flash_seconds, bfb_size=4 << 20, dpu_os="join")
    fleet = BenchFleet(manifests_dir, work / "sim", options, args.agent_procs)
    try:
        t_start = time.monotonic()
        await fleet.start()
        await fleet.start_agents()
        log(f"fleet up in {time.monotonic() - t_start:.1f}s: {n} hosts, {n} emulated BlueFields")
        base = fleet.info["kubeUrl"]
        async with aiohttp.ClientSession() as http:
            initial, _ = await wait_all_ready(http, base, n, "bf-bundle-v1", within=600)
            log(f"initial provisioning: {n} DPUs Ready on v1 in {initial:.1f}s")
            patch = {"spec": {"dpuTemplate": {"spec": {"bfb": {"name": "bf-bundle-v2"}}}}}
            async with http.patch(base + DPUSET_PATH, data=json.dumps(patch),
                                  headers={"Content-Type": "application/merge-patch+json"}) as resp:  # fmt: skip
                assert resp.status == 200, await resp.text()
            clock = PhaseClock()
            wall, worst = await wait_all_ready(
                http, base, n, "bf-bundle-v2", within=60 + 3 * n * args.flash_seconds, clock=clock
            )
        allowed = budget(n, args.max_unavailable)
        waves = math.ceil(n / allowed)
        ideal = waves * args.flash_seconds
        log(f"rolling update: {n} DPUs Ready on v2 in {wall:.1f}s; ideal {waves} waves x {args.flash_seconds:g}s")
        log(f"mean seconds per phase (a DPU incarnation, as sampled): {clock.means()}")
        return {
            "dpus": n,
            "flash_seconds": args.flash_seconds,
            "max_unavailable": args.max_unavailable,
            "waves": waves,
            "rollout_s": round(wall, 2),
            "ideal_s": round(ideal, 2),
            "overhead_ratio": round(wall / ideal, 3),
            "max_unavailable_seen": worst,
            "max_unavailable_allowed": allowed,
            "initial_provision_s": round(initial, 2),
            "phase_mean_s": clock.means(),
        }
    finally:
        fleet.processes.stop_all()
        if fleet.etcd is not None:
            fleet.etcd.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--dpus", type=int, default=100)
    p.add_argument("--flash-seconds", type=float, default=20.0, help="T: one emulated flash (install + DPU reboot)")
    p.add_argument("--max-unavailable", default="10%", help="the DPUSet's maxUnavailable (integer or percent)")
    p.add_argument("--agent-procs", type=int, default=2, help="processes the host dpfds' agents run in")
    p.add_argument("--stream-mib", type=int, default=256, help="image size for the streaming comparison")
    p.add_argument("--stream-rounds", type=int, default=5)
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, state) for a look afterwards")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dpf-bench-provision-"))
    failed = True
    try:
        figures = asyncio.run(rollout(args, work))
        failed = False
    finally:
        if args.keep or failed:
            log(f"work dir kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    log("streaming: our DMS client and emulated DMS vs raw gRPC")
    stream = dms_stream.bench(args.stream_mib, 65536, args.stream_rounds)
    keys = ("stream_mib_s", "raw_verified_mib_s", "raw_mib_s", "stream_ratio_vs_raw", "stream_ratio_vs_raw_count_only")
    figures.update({k: stream[k] for k in keys})
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
