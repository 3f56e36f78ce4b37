"""Every gossip parameter in one frozen object, with hashicorp/memberlist's LAN profile as defaults."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar, Self


class GossipConfigError(ValueError):
    """A gossip parameter is out of range."""


@dataclass(frozen=True, slots=True)
class GossipConfig:
    """memberlist's ``DefaultLANConfig`` (times in seconds). ``lan()``, ``wan()`` and ``local()`` give its profiles."""

    bind_port: int = 7946
    # failure detection (SWIM)
    probe_interval: float = 1.0
    probe_timeout: float = 0.5
    indirect_checks: int = 3
    disable_tcp_pings: bool = False
    tcp_timeout: float = 10.0
    # suspicion (Lifeguard): min = suspicion_mult * max(1, log10 n) * probe_interval; max = min * max_timeout_mult
    suspicion_mult: int = 4
    suspicion_max_timeout_mult: int = 6
    # local health awareness: timeouts scale by 1..awareness_max_multiplier
    awareness_max_multiplier: int = 8
    # dissemination: retransmit limit = retransmit_mult * ceil(log10(n + 1))
    retransmit_mult: int = 4
    gossip_interval: float = 0.2
    gossip_nodes: int = 3
    gossip_to_the_dead_time: float = 30.0
    # anti-entropy
    push_pull_interval: float = 30.0
    max_concurrent_push_pull: int = 128
    # dead members keep their name this long before another address may reclaim it (0: never)
    dead_node_reclaim_time: float = 0.0
    # packets and queues
    udp_buffer_size: int = 1400
    # the broadcast queue is pruned to its newest max(max_queue_depth, 2 * members) entries every queue_check_interval
    max_queue_depth: int = 4096
    max_meta_size: int = 512
    queue_check_interval: float = 30.0
    # authentication: a stream message may be this big (push-pull of a large cluster); a packet's timestamp may be
    # this far from our clock; this many counters back from a sender's newest are still accepted once
    max_stream_size: int = 4 * 1024 * 1024
    max_clock_skew: float = 60.0
    replay_window: int = 1024

    PROFILES: ClassVar[tuple[str, ...]] = ("lan", "wan", "local")

    def __post_init__(self) -> None:
        positive_times = ("probe_interval", "probe_timeout", "tcp_timeout", "gossip_interval", "max_clock_skew")
        for name in positive_times:
            if getattr(self, name) <= 0:
                raise GossipConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        non_negative_times = (
            "gossip_to_the_dead_time",
            "push_pull_interval",
            "dead_node_reclaim_time",
            "queue_check_interval",
        )
        for name in non_negative_times:
            if getattr(self, name) < 0:
                raise GossipConfigError(f"{name} must be >= 0 (0 disables), got {getattr(self, name)}")
        if self.probe_timeout > self.probe_interval:
            raise GossipConfigError(
                f"probe_timeout ({self.probe_timeout}) must not exceed probe_interval ({self.probe_interval})"
            )
        at_least_one = (
            "suspicion_mult",
            "suspicion_max_timeout_mult",
            "awareness_max_multiplier",
            "retransmit_mult",
            "max_concurrent_push_pull",
            "max_queue_depth",
            "replay_window",
        )
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise GossipConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("indirect_checks", "gossip_nodes", "max_meta_size"):
            if getattr(self, name) < 0:
                raise GossipConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.bind_port <= 65535:
            raise GossipConfigError(f"bind_port must be 0..65535, got {self.bind_port}")
        if self.max_stream_size < 64 * 1024:
            raise GossipConfigError(f"max_stream_size must be >= 65536, got {self.max_stream_size}")
        if self.udp_buffer_size < 512:
            raise GossipConfigError(f"udp_buffer_size must be >= 512, got {self.udp_buffer_size}")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool):
                continue
            if f.type in ("int",) and not isinstance(value, int):
                raise GossipConfigError(f"{f.name} must be an int, got {value!r}")

    @classmethod
    def profile(cls, name: str) -> Self:
        """One of memberlist's profiles by name: lan, wan or local."""
        if name not in cls.PROFILES:
            raise GossipConfigError(f"unknown gossip profile {name!r}: expected one of {', '.join(cls.PROFILES)}")
        return {"lan": cls.lan, "wan": cls.wan, "local": cls.local}[name]()

    @classmethod
    def lan(cls) -> Self:
        return cls()

    @classmethod
    def wan(cls) -> Self:
        """memberlist's ``DefaultWANConfig``."""
        return replace(
            cls(),
            tcp_timeout=30.0,
            suspicion_mult=6,
            push_pull_interval=60.0,
            probe_timeout=3.0,
            probe_interval=5.0,
            gossip_nodes=4,
            gossip_interval=0.5,
            gossip_to_the_dead_time=60.0,
        )

    @classmethod
    def local(cls) -> Self:
        """memberlist's ``DefaultLocalConfig`` (loopback, tests)."""
        return replace(
            cls(),
            tcp_timeout=1.0,
            indirect_checks=1,
            retransmit_mult=2,
            suspicion_mult=3,
            push_pull_interval=15.0,
            probe_timeout=0.2,
            probe_interval=1.0,
            gossip_interval=0.1,
            gossip_to_the_dead_time=15.0,
        )
