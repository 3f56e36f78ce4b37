"""The gossip engine in the simulated network: real engines, real wire encoding and sealing, a virtual clock."""

from dataclasses import replace

import pytest

from dpfd.gossip import wire
from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import Keyring, Sealer
from dpfd.gossip.lifeguard import suspicion_timeout
from dpfd.gossip.messages import Ping
from dpfd.gossip.state import Event, MemberState, Suspect
from dpfd.sim.gossip_cluster import SimCluster

LAN = GossipConfig.lan()
ALIVE, SUSPECT, DEAD, LEFT = MemberState.ALIVE, MemberState.SUSPECT, MemberState.DEAD, MemberState.LEFT


def started(n: int, **kw: object) -> SimCluster:
    c = SimCluster(n, **kw)  # type: ignore[arg-type]
    c.warm_start()
    return c


def test_members_join_through_one_seed_and_converge() -> None:
    c = SimCluster(30, seed=3)
    c.start(seeds=1)
    took = c.run_until(c.converged, within=30)
    assert took is not None and took < 5, took
    assert c.false_deaths(0) == []


def test_a_crash_is_detected_by_everyone_within_suspicion_bounds() -> None:
    c = started(20, seed=4)
    c.run_for(5)
    c.crash("m0007")
    t0 = c.clock.now
    took = c.run_until(lambda: c.all_see("m0007", {DEAD}), within=60)
    assert took is not None
    # at least the minimum suspicion time; at most a probe round + the timeout + dissemination beyond it
    min_s = suspicion_timeout(LAN.suspicion_mult, 20, LAN.probe_interval)
    times = c.dead_times("m0007", t0)
    assert len(times) == 19
    assert min(times.values()) >= min_s
    assert max(times.values()) < min_s + 5 * LAN.probe_interval
    assert c.false_deaths(0) == []


def test_a_member_cut_off_briefly_refutes_and_is_never_declared_dead() -> None:
    c = started(10, seed=5)
    c.run_for(3)
    victim = c.addr_of("m0003")
    others = [c.addr_of(c.name(i)) for i in range(10) if i != 3]
    c.net.partition([{victim}, set(others)])
    took = c.run_until(lambda: any(c.state_seen(n.name, "m0003") is SUSPECT for n in c.live()), within=10)
    assert took is not None, "nobody suspected the cut-off member"
    c.net.heal()
    assert c.run_until(lambda: c.all_see("m0003", {ALIVE}), within=10) is not None
    assert c.nodes["m0003"].stats.refutations >= 1
    assert c.nodes["m0003"].membership.incarnation > 1
    assert c.false_deaths(0) == []


def test_graceful_leave_is_seen_as_left_not_failed() -> None:
    c = started(10, seed=6)
    c.run_for(2)
    done: list[bool] = []
    c.nodes["m0002"].leave(timeout=2.0, on_done=lambda: done.append(True))
    assert c.run_until(lambda: bool(done), within=3) is not None
    c.crash("m0002")  # the process exits after leaving
    assert c.run_until(lambda: c.all_see("m0002", {LEFT}), within=5) is not None
    assert c.false_deaths(0) == []
    leaves = [o for o in c.observations if o.member == "m0002" and o.event is Event.LEAVE]
    assert leaves and all(o.state is LEFT for o in leaves)


def test_metadata_updates_reach_every_member() -> None:
    c = started(50, seed=7)
    c.run_for(2)
    c.nodes["m0010"].update_meta(b'{"role":"dpu"}')
    took = c.run_until(lambda: c.all_have_meta("m0010", b'{"role":"dpu"}'), within=10)
    assert took is not None and took < 3, took
    updates = {o.observer for o in c.observations if o.member == "m0010" and o.event is Event.UPDATE}
    assert len(updates) == 50  # the member itself is told too


def test_indirect_probes_keep_a_member_alive_across_a_broken_link() -> None:
    c = started(6, seed=8)
    a, b = c.addr_of("m0000"), c.addr_of("m0001")
    c.net.set_link_loss(a, b, 1.0)
    c.net.set_link_loss(b, a, 1.0)
    c.run_for(30)
    assert c.nodes["m0000"].stats.indirect_probes > 0
    assert c.all_see("m0001", {ALIVE}) and c.all_see("m0000", {ALIVE})
    assert c.false_deaths(0) == []


def test_tcp_fallback_when_udp_is_lost_and_no_helper_exists() -> None:
    c = started(2, seed=9)
    a, b = c.addr_of("m0000"), c.addr_of("m0001")
    c.net.set_link_loss(a, b, 1.0)
    c.net.set_link_loss(b, a, 1.0)
    c.run_for(20)
    assert c.nodes["m0000"].stats.tcp_fallback_ok > 0
    assert c.state_seen("m0000", "m0001") is ALIVE
    assert c.nodes["m0000"].stats.suspicions_raised == 0


def test_without_tcp_fallback_the_same_member_is_suspected() -> None:
    c = started(2, seed=9, config=replace(LAN, disable_tcp_pings=True))
    a, b = c.addr_of("m0000"), c.addr_of("m0001")
    c.net.set_link_loss(a, b, 1.0)
    c.net.set_link_loss(b, a, 1.0)
    c.run_for(5)
    assert c.nodes["m0000"].stats.suspicions_raised > 0


def test_a_deaf_member_loses_local_health() -> None:
    """Lifeguard: a member that hears nothing (inbound lost) sees its probes fail and raises its health score, which
    slows its probing and stretches its timeouts instead of accusing healthy members at full speed."""
    c = started(8, seed=10)
    deaf = c.addr_of("m0004")
    for i in range(8):
        if i != 4:
            c.net.set_link_loss(c.addr_of(c.name(i)), deaf, 1.0)
    c.run_for(10)
    assert c.nodes["m0004"].health_score > 0
    assert all(n.health_score == 0 for n in c.live() if n.name != "m0004")


def test_buddy_system_tells_a_suspect_it_is_suspected_in_the_probe() -> None:
    c = started(5, seed=11, config=replace(LAN, gossip_interval=60.0))  # no gossip rounds: only probes carry news
    c.run_for(1)
    prober = c.nodes["m0000"]
    prober.membership.suspect_local("m0003", c.clock.now)  # suspicion known to the prober only, not queued
    took = c.run_until(lambda: c.nodes["m0003"].membership.incarnation > 1, within=6)
    assert took is not None, "the suspect never learned it was suspected"
    assert c.nodes["m0003"].stats.refutations == 1


def test_partitioned_halves_find_each_other_again_after_healing() -> None:
    c = started(10, seed=12)
    c.run_for(2)
    left = {c.addr_of(c.name(i)) for i in range(5)}
    right = {c.addr_of(c.name(i)) for i in range(5, 10)}
    c.net.partition([left, right])
    assert c.run_until(lambda: c.state_seen("m0000", "m0009") is DEAD, within=60) is not None
    c.net.heal()
    # the dead are still gossiped to for gossip_to_the_dead_time: they hear of their death and refute
    assert c.run_until(c.converged, within=LAN.gossip_to_the_dead_time) is not None


def test_forged_replayed_and_oversized_packets_are_dropped_and_counted() -> None:
    c = started(3, seed=13)
    c.run_for(1)
    target = c.nodes["m0001"]
    before = target.packet_stats.accepted
    ping = wire.encode_packet([Ping(99, "m0001", "m0000", c.addr_of("m0000"))])
    forged = Sealer(Keyring([b"x" * 32])).seal(ping, c.clock.wall())
    target.on_packet(forged, c.addr_of("m0000"))
    genuine = c.nodes["m0000"].sealer.seal(ping, c.clock.wall())
    target.on_packet(genuine, c.addr_of("m0000"))
    target.on_packet(genuine, c.addr_of("m0000"))
    target.on_packet(b"\0" * 70_000, c.addr_of("m0000"))
    stats = target.packet_stats
    assert (stats.forged, stats.replayed, stats.oversized) == (1, 1, 1)
    assert stats.accepted == before + 1


def test_a_member_with_another_key_cannot_join() -> None:
    c = started(3, seed=14)
    intruder = c.add("intruder")
    intruder.sealer.keyring = Keyring([b"y" * 32])
    intruder.opener.keyring = intruder.sealer.keyring
    intruder.start()
    answered: list[int] = []
    intruder.join([c.addr_of("m0000")], answered.append)
    c.run_for(15)
    assert answered == [0]
    assert all("intruder" not in n.membership.members for n in c.nodes.values() if n.name != "intruder")
    assert c.nodes["m0000"].packet_stats.forged >= 1


def test_oversized_metadata_is_refused() -> None:
    c = started(2)
    with pytest.raises(ValueError, match="max_meta_size"):
        c.nodes["m0000"].update_meta(b"x" * (LAN.max_meta_size + 1))


def test_same_seed_same_run() -> None:
    def run() -> list[tuple[float, str, str]]:
        c = started(20, seed=21, loss=0.05)
        c.run_for(5)
        c.crash("m0004")
        c.run_for(20)
        return [(o.at, o.observer, o.member) for o in c.observations]

    assert run() == run()


def test_leave_reaches_the_only_other_member() -> None:
    c = started(2, seed=15)
    c.run_for(1)
    done: list[bool] = []
    c.nodes["m0001"].leave(timeout=2.0, on_done=lambda: done.append(True))
    assert c.run_until(lambda: bool(done), within=3) is not None
    c.crash("m0001")
    assert c.run_until(lambda: c.state_seen("m0000", "m0001") is LEFT, within=2) is not None


def test_the_broadcast_queue_is_pruned_to_its_depth() -> None:
    c = started(3, seed=16, config=replace(LAN, max_queue_depth=10, queue_check_interval=1.0, gossip_interval=60.0))
    node = c.nodes["m0000"]
    for i in range(50):  # suspicions of members nobody knows: the others ignore them, so the cluster stays at 3
        node._broadcast(Suspect(f"x{i}", 1, "m0000"))
    assert len(node.queue) == 50
    c.run_for(1.5)
    assert len(node.queue) <= 10
