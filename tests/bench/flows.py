"""Benchmark: 10,000 flows over 1,000 ServiceChains applied by dpfd's ServiceChain reconciler vs raw ovs-ofctl.

    python tests/bench/flows.py [--chains 1000] [--switches 5] [--rounds 3]

Starts its own private Open vSwitch (ovsdb-server + ovs-vswitchd, userspace datapath, own netns and temp dir;
stopped by pidfile PID) with br-sfc (datapath_type=netdev, fail_mode=secure).

Project run: every chain (5 two-port switches: 10 flows) is reconciled from its intent (spec validation, ofport
lookup, flow text, bundle of delete-cookie + add); all chains' reconciles start at once and share bundles
(`ratio_vs_raw`), and again through the NodeAgent's work queue (KeyedRunner) at its default concurrency 4
(`ratio_vs_raw_c4`): a reconcile waits for its bundle outside its concurrency slot, so chains still share bundles.
Reconvergence: with the 10,000 flows installed and dpfd's VswitchdMonitor watching OVSDB, ovs-vswitchd is killed
(SIGKILL) and started again; `reconverge_s` is the time from the kill until all 10,000 flows are back (restored by
the monitor's callback, as the DPU dpfd wires it), `restart_s` the part the fixture needed to start ovs-vswitchd.
Raw baseline, same run: `ovs-ofctl -O OpenFlow14 --bundle replace-flows br-sfc -` of exactly the flow text the
reconciler produced. The bridge is emptied before each timed run; each run is checked to leave exactly the 10,000
flows. Medians over --rounds. Ofports are numbers (the flows do not need the ports to exist). Last line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dpfd.agent.keyed_runner import KeyedRunner  # noqa: E402
from dpfd.api.intents import Intent, ObjectRef  # noqa: E402
from dpfd.dpu.flows.model import Labels, PortUnresolved  # noqa: E402
from dpfd.dpu.flows.ofctl import Ofctl  # noqa: E402
from dpfd.dpu.flows.reconciler import ServiceChainReconciler  # noqa: E402
from dpfd.dpu.ovs.connection import OvsdbConnection  # noqa: E402
from dpfd.dpu.ovs.monitor import VswitchdMonitor  # noqa: E402
from tests.ovs_fixture import PrivateOvs, missing_ovs  # noqa: E402

BR = "br-sfc"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def intents(chains: int, switches: int) -> list[Intent]:
    out = []
    for i in range(chains):
        sw = [
            {"ports": [{"serviceInterface": {"matchLabels": {"ofport": str(10 * i + 2 * s + k + 1)}}} for k in (0, 1)]}
            for s in range(switches)
        ]
        ref = ObjectRef(kind="ServiceChain", namespace="bench", name=f"chain{i}-dpu1")
        out.append(Intent(node="dpu1", ref=ref, generation=1, spec={"switches": sw}))
    return out


async def lookup(namespace: str, labels: Labels) -> int:
    try:
        return int(labels["ofport"])
    except (KeyError, ValueError):
        raise PortUnresolved(f"no ofport in {dict(labels)}") from None


async def count_flows(ofctl: Ofctl) -> int:
    return len(await ofctl.dump_flows())


async def run_project(
    ovs: PrivateOvs, its: list[Intent], limit: int | None
) -> tuple[float, int, list[str], ServiceChainReconciler]:
    rec = ServiceChainReconciler("dpu1", lookup, ovs.mgmt(BR))
    by_ref = {it.ref: it for it in its}
    failed: list[str] = []

    async def one(ref: ObjectRef) -> None:
        report = await rec.reconcile(ref, by_ref[ref])
        if report is None or report.phase != "Ready":
            failed.append(f"{ref.name}: {report}")

    t0 = time.perf_counter()
    if limit is None:
        await asyncio.gather(*(one(it.ref) for it in its))
    else:
        runner: KeyedRunner[ObjectRef] = KeyedRunner(one, concurrency=limit)
        for it in its:
            runner.kick(it.ref)
        await runner.wait_idle()
    elapsed = time.perf_counter() - t0
    if failed:
        raise RuntimeError(f"{len(failed)} chains not Ready, e.g. {failed[0]}")
    texts = [t for flows in rec.flows.installed().values() for t in flows]
    return elapsed, rec.flows.bundles, texts, rec


async def reconverge(ovs: PrivateOvs, rec: ServiceChainReconciler, want: int) -> tuple[float, float]:
    """Kill ovs-vswitchd and start it again; (seconds until all `want` flows are back, seconds the restart took)."""
    conn = OvsdbConnection(ovs.db, timeout=5)
    await conn.start()

    async def restore() -> None:
        await rec.flows.restore()

    mon = VswitchdMonitor(conn, BR, restore)
    try:
        await mon.start()
        ofctl = Ofctl(target=ovs.mgmt(BR))
        t0 = time.perf_counter()
        await asyncio.to_thread(ovs.restart_vswitchd, signal.SIGKILL)
        restart_s = time.perf_counter() - t0
        deadline = t0 + 30
        while True:  # measuring, not synchronising: how soon the flows are back
            try:
                if await count_flows(ofctl) == want:
                    break
            except Exception:  # the bridge's socket may not answer yet
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError(f"flows not back within 30 s of the ovs-vswitchd restart ({mon.restarts} noticed)")
            await asyncio.sleep(0.005)
        return time.perf_counter() - t0, restart_s
    finally:
        await mon.stop()
        await conn.stop()


async def run_raw(ofctl: Ofctl, texts: list[str]) -> float:
    t0 = time.perf_counter()
    await ofctl.replace_flows(texts)
    return time.perf_counter() - t0


async def bench(chains: int, switches: int, rounds: int) -> dict[str, Any]:
    why = missing_ovs()
    if why:
        raise SystemExit(why)
    its = intents(chains, switches)
    want = chains * switches * 2
    with PrivateOvs() as ovs:
        ovs.add_bridge(BR)
        ofctl = Ofctl(target=ovs.mgmt(BR))
        ours: list[float] = []
        ours_c4: list[float] = []
        raws: list[float] = []
        bundles: list[int] = []
        bundles_c4: list[int] = []
        reconverges: list[float] = []
        restarts: list[float] = []
        texts: list[str] = []
        for r in range(rounds):
            for label in ("ours", "raw", "ours_c4"):
                await ofctl.run("del-flows", ovs.mgmt(BR))
                if label == "raw":
                    raws.append(await run_raw(ofctl, texts))
                else:
                    s, n, texts_now, rec = await run_project(ovs, its, None if label == "ours" else 4)
                    (ours if label == "ours" else ours_c4).append(s)
                    (bundles if label == "ours" else bundles_c4).append(n)
                    texts = texts_now
                got = await count_flows(ofctl)
                if got != want:
                    raise RuntimeError(f"round {r} {label}: {got} flows on {BR}, want {want}")
            back, restart = await reconverge(ovs, rec, want)
            reconverges.append(back)
            restarts.append(restart)
            log(f"round {r}: ours {ours[-1]:.3f}s ({bundles[-1]} bundles), raw {raws[-1]:.3f}s, "
                f"ours at concurrency 4 {ours_c4[-1]:.3f}s ({bundles_c4[-1]} bundles), "
                f"reconverge {back:.3f}s (restart {restart:.3f}s)")  # fmt: skip
    ours_s, raw_s, c4_s = statistics.median(ours), statistics.median(raws), statistics.median(ours_c4)
    return {
        "chains": chains,
        "flows": want,
        "rounds": rounds,
        "ours_s": round(ours_s, 4),
        "raw_s": round(raw_s, 4),
        "ratio_vs_raw": round(ours_s / raw_s, 3),
        "bundles": statistics.median(bundles),
        "ours_c4_s": round(c4_s, 4),
        "ratio_vs_raw_c4": round(c4_s / raw_s, 3),
        "bundles_c4": statistics.median(bundles_c4),
        "target_ratio": 1.5,
        "reconverge_s": round(statistics.median(reconverges), 4),
        "restart_s": round(statistics.median(restarts), 4),
        "target_reconverge_s": 2.0,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--chains", type=int, default=1000)
    p.add_argument("--switches", type=int, default=5, help="two-port switches per chain (2 flows each)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    print(json.dumps(asyncio.run(bench(args.chains, args.switches, args.rounds))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
