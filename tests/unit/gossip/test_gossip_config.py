from dataclasses import FrozenInstanceError, replace

import pytest

from dpfd.gossip.config import GossipConfig, GossipConfigError


def test_lan_defaults_are_memberlists() -> None:
    c = GossipConfig()
    assert c == GossipConfig.lan()
    assert (c.probe_interval, c.probe_timeout, c.indirect_checks) == (1.0, 0.5, 3)
    assert (c.retransmit_mult, c.suspicion_mult, c.suspicion_max_timeout_mult) == (4, 4, 6)
    assert (c.gossip_interval, c.gossip_nodes, c.push_pull_interval) == (0.2, 3, 30.0)
    assert (c.awareness_max_multiplier, c.tcp_timeout, c.bind_port) == (8, 10.0, 7946)
    assert (c.gossip_to_the_dead_time, c.udp_buffer_size, c.max_meta_size) == (30.0, 1400, 512)


def test_wan_and_local_profiles() -> None:
    w = GossipConfig.wan()
    assert (w.probe_interval, w.probe_timeout, w.suspicion_mult, w.gossip_interval, w.gossip_nodes) == (
        5.0,
        3.0,
        6,
        0.5,
        4,
    )
    assert w.push_pull_interval == 60.0
    loc = GossipConfig.local()
    assert (loc.probe_timeout, loc.indirect_checks, loc.retransmit_mult, loc.suspicion_mult) == (0.2, 1, 2, 3)


def test_frozen() -> None:
    with pytest.raises(FrozenInstanceError):
        GossipConfig().probe_interval = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes",
    [
        {"probe_interval": 0.0},
        {"probe_timeout": -1.0},
        {"probe_timeout": 2.0},  # longer than the probe interval
        {"gossip_interval": 0.0},
        {"push_pull_interval": -1.0},
        {"suspicion_mult": 0},
        {"suspicion_max_timeout_mult": 0},
        {"awareness_max_multiplier": 0},
        {"retransmit_mult": 0},
        {"indirect_checks": -1},
        {"gossip_nodes": -1},
        {"bind_port": 70000},
        {"udp_buffer_size": 100},
        {"retransmit_mult": 2.5},
    ],
)
def test_validation_rejects(changes: dict[str, object]) -> None:
    with pytest.raises(GossipConfigError):
        replace(GossipConfig(), **changes)  # type: ignore[arg-type]


def test_zero_disables_push_pull_and_reclaim() -> None:
    c = replace(GossipConfig(), push_pull_interval=0.0, dead_node_reclaim_time=0.0, indirect_checks=0)
    assert c.push_pull_interval == 0.0
