"""Benchmark: gossip membership with 1,000 members in the deterministic simulation (virtual clock, simulated UDP and
TCP, the real engine with real wire encoding and HMAC sealing), memberlist's LAN profile.

    python tests/bench/gossip.py [--members 1000] [--crashes 5] [--loss-seconds 120] [--seed 1]

Figures (virtual seconds):
* ``detect_p50_s`` / ``detect_p99_s``: from a member's crash until each other member declares it dead, pooled over
  every observer of ``--crashes`` crashes made one after another.
* ``formula_s``: what memberlist's parameters predict for the same run, ``T/(1-e^-1) + T + S + G``: SWIM's expected
  wait for the first probe of the crashed member (T = probe interval), that probe's own round (the suspicion is raised
  when it ends), the minimum suspicion timeout S = SuspicionMult * log10(N) * T reached once Lifeguard's
  confirmations have arrived, and G = ceil(log_fanout N) gossip intervals to spread the dead message.
  Target: ``detect_p99_s <= 1.2 * formula_s`` (``detect_ratio``).
* ``false_positives``: members declared dead although they never failed, over ``--loss-seconds`` at 5 % and at
  10 % random datagram loss on every link (streams, like TCP, are not lost). Target 0.
* ``bytes_per_member_s``: datagram and stream bytes a member sends per second in steady state (no loss).
* ``converge_p50_s`` / ``converge_max_s``: from a metadata change on one member until every member has it.
* ``join_converge_s``: N members started at once, each joining through the same 3 seeds (push-pull over TCP), until
  every member sees every other alive.
Last line: JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from dpfd.gossip.config import GossipConfig  # noqa: E402
from dpfd.gossip.lifeguard import suspicion_timeout  # noqa: E402
from dpfd.gossip.state import MemberState  # noqa: E402
from dpfd.sim.gossip_cluster import SimCluster  # noqa: E402

WARMUP_S = 10.0
GONE = {MemberState.DEAD, MemberState.LEFT}


def formula_s(cfg: GossipConfig, n: int) -> float:
    first_probe = cfg.probe_interval / (1 - math.exp(-1))
    suspicion = suspicion_timeout(cfg.suspicion_mult, n, cfg.probe_interval)
    spread = math.ceil(math.log(n) / math.log(cfg.gossip_nodes)) * cfg.gossip_interval
    return first_probe + cfg.probe_interval + suspicion + spread


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1)]


def detection(n: int, crashes: int, seed: int) -> tuple[list[float], int]:
    c = SimCluster(n, seed=seed)
    c.warm_start()
    c.run_for(WARMUP_S)
    pooled: list[float] = []
    for i in range(crashes):
        victim = c.name(1 + i * (n // max(1, crashes)) % (n - 1))
        c.crash(victim)
        t0 = c.clock.now
        took = c.run_until(lambda v=victim: c.all_see(v, GONE), within=120, check_every=0.25)  # type: ignore[misc]
        if took is None:
            raise SystemExit(f"crash of {victim} not detected by every member within 120 s")
        pooled += list(c.dead_times(victim, t0).values())
        c.run_for(5)
    return pooled, len(c.false_deaths(0))


def false_positives(n: int, loss: float, seconds: float, seed: int) -> int:
    c = SimCluster(n, seed=seed, loss=loss)
    c.warm_start()
    c.run_for(seconds)
    return len(c.false_deaths(0))


def steady_bytes(n: int, seconds: float, seed: int) -> float:
    c = SimCluster(n, seed=seed)
    c.warm_start()
    c.run_for(WARMUP_S)
    before = c.bytes_sent()
    c.run_for(seconds)
    return (c.bytes_sent() - before) / n / seconds


def convergence(n: int, rounds: int, seed: int) -> list[float]:
    c = SimCluster(n, seed=seed)
    c.warm_start()
    c.run_for(WARMUP_S)
    out = []
    for r in range(rounds):
        node = c.nodes[c.name(r * 97 % n)]
        meta = f'{{"round":{r}}}'.encode()
        node.update_meta(meta)
        took = c.run_until(lambda n=node.name, v=meta: c.all_have_meta(n, v), within=60, check_every=0.02)  # type: ignore[misc]
        if took is None:
            raise SystemExit(f"metadata change {r} did not reach every member within 60 s")
        out.append(took)
        c.run_for(2)
    return out


def join_convergence(n: int, seed: int) -> float:
    c = SimCluster(n, seed=seed)
    c.start(seeds=3)
    took = c.run_until(c.converged, within=120, check_every=0.5)
    if took is None:
        raise SystemExit(f"{n} members joining through 3 seeds did not converge within 120 s")
    return took


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--crashes", type=int, default=5)
    p.add_argument("--loss-seconds", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    n, cfg = args.members, GossipConfig.lan()
    wall = time.perf_counter()

    detect, fp_detect = detection(n, args.crashes, args.seed)
    formula = formula_s(cfg, n)
    print(f"detection: {len(detect)} observations, p50 {percentile(detect, 50):.2f} s, "
          f"p99 {percentile(detect, 99):.2f} s, formula {formula:.2f} s", file=sys.stderr)  # fmt: skip
    fps = {}
    for loss in (0.05, 0.10):
        fps[f"{int(loss * 100)}%"] = false_positives(n, loss, args.loss_seconds, args.seed)
        print(
            f"loss {loss:.0%}: {fps[f'{int(loss * 100)}%']} false positives in {args.loss_seconds:g} s", file=sys.stderr
        )
    bps = steady_bytes(n, 30.0, args.seed)
    conv = convergence(n, 5, args.seed)
    join_s = join_convergence(n, args.seed)
    result = {
        "members": n,
        "detect_p50_s": round(percentile(detect, 50), 3),
        "detect_p99_s": round(percentile(detect, 99), 3),
        "formula_s": round(formula, 3),
        "detect_ratio": round(percentile(detect, 99) / formula, 3),
        "false_positives": {**fps, "during_detection": fp_detect},
        "bytes_per_member_s": round(bps, 1),
        "converge_p50_s": round(statistics.median(conv), 3),
        "converge_max_s": round(max(conv), 3),
        "join_converge_s": round(join_s, 2),
        "loss_seconds": args.loss_seconds,
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
