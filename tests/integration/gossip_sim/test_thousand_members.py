"""1,000 members in the deterministic simulation, 5 % datagram loss: one crash found by everyone in the time the
parameters predict, nobody else declared dead, and a metadata change everywhere within seconds."""

from __future__ import annotations

import math

import pytest

from dpfd.gossip.config import GossipConfig
from dpfd.gossip.lifeguard import suspicion_timeout
from dpfd.gossip.state import MemberState
from dpfd.sim.gossip_cluster import SimCluster

pytestmark = pytest.mark.timeout(300)

N = 1000


def test_thousand_members_with_loss() -> None:
    cfg = GossipConfig.lan()
    c = SimCluster(N, config=cfg, seed=2026, loss=0.05)
    c.warm_start()
    c.run_for(10)

    c.crash("m0500")
    t0 = c.clock.now
    predicted = (
        cfg.probe_interval / (1 - math.exp(-1))
        + cfg.probe_interval
        + suspicion_timeout(cfg.suspicion_mult, N, cfg.probe_interval)
        + math.ceil(math.log(N, cfg.gossip_nodes)) * cfg.gossip_interval
    )
    took = c.run_until(lambda: c.all_see("m0500", {MemberState.DEAD}), within=60, check_every=0.25)
    assert took is not None, "the crash was not detected by every member within 60 s"
    times = sorted(c.dead_times("m0500", t0).values())
    assert len(times) == N - 1
    assert times[int(0.99 * len(times))] <= 1.2 * predicted, (times[-1], predicted)
    assert c.false_deaths(0) == []

    c.nodes["m0042"].update_meta(b'{"v":2}')
    took = c.run_until(lambda: c.all_have_meta("m0042", b'{"v":2}'), within=10)
    assert took is not None and took < 3.0, took
