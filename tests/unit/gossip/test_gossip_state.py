import pytest

from dpfd.gossip.config import GossipConfig
from dpfd.gossip.state import Alive, Dead, Event, Member, Membership, MemberState, Suspect


def cluster(*names: str, local: str = "me") -> Membership:
    m = Membership(local=local, addr="10.0.0.1", config=GossipConfig())
    for i, name in enumerate(names):
        assert m.on_alive(Alive(name, 1, f"10.0.1.{i}"), 0.0).event is Event.JOIN
    return m


def member(m: Membership, name: str) -> Member:
    return m.members[name]


def test_local_starts_alive_at_incarnation_1() -> None:
    m = cluster()
    assert m.incarnation == 1 and member(m, "me").state is MemberState.ALIVE
    assert m.alive_message() == Alive("me", 1, "10.0.0.1", b"")


def test_alive_needs_a_higher_incarnation() -> None:
    m = cluster("a")
    assert not m.on_alive(Alive("a", 1, "10.0.1.0"), 1.0).applied
    out = m.on_alive(Alive("a", 2, "10.0.1.0", b"v2"), 1.0)
    assert out.applied and out.event is Event.UPDATE and out.broadcast == Alive("a", 2, "10.0.1.0", b"v2")
    assert member(m, "a").incarnation == 2


def test_alive_incarnation_zero_of_unknown_is_ignored() -> None:
    m = cluster()
    assert not m.on_alive(Alive("x", 0, "10.0.1.9"), 0.0).applied


def test_suspect_then_higher_alive_overrides() -> None:
    m = cluster("a", "b", "c", "d")
    out = m.on_suspect(Suspect("a", 1, "b"), 1.0)
    assert out.applied and out.broadcast == Suspect("a", 1, "b")
    assert member(m, "a").state is MemberState.SUSPECT and "a" in m.suspicions
    # an alive at the same incarnation does not clear the suspicion
    assert not m.on_alive(Alive("a", 1, "10.0.1.0"), 2.0).applied
    assert member(m, "a").state is MemberState.SUSPECT
    out = m.on_alive(Alive("a", 2, "10.0.1.0"), 2.0)
    assert out.applied and out.event is None
    assert member(m, "a").state is MemberState.ALIVE and "a" not in m.suspicions


def test_old_suspect_is_ignored() -> None:
    m = cluster("a")
    m.on_alive(Alive("a", 5, "10.0.1.0"), 0.0)
    assert not m.on_suspect(Suspect("a", 4, "b"), 1.0).applied
    assert member(m, "a").state is MemberState.ALIVE


def test_suspect_with_higher_incarnation_takes_it() -> None:
    m = cluster("a")
    assert m.on_suspect(Suspect("a", 3, "b"), 1.0).applied
    assert member(m, "a").incarnation == 3


def test_suspect_of_unknown_is_ignored() -> None:
    assert not cluster().on_suspect(Suspect("x", 1, "b"), 0.0).applied


def test_second_suspect_is_a_confirmation() -> None:
    m = cluster("a", "b", "c", "d")
    m.on_suspect(Suspect("a", 1, "b"), 0.0)
    assert m.suspicions["a"].deadline == 24.0  # n = 5: min 4 s, max 24 s, k = 2
    out = m.on_suspect(Suspect("a", 1, "c"), 1.0)
    assert out.applied and out.broadcast == Suspect("a", 1, "c")
    assert m.suspicions["a"].deadline == pytest.approx(11.381)
    assert not m.on_suspect(Suspect("a", 1, "c"), 1.0).applied  # same confirmer again: not re-gossiped


def test_suspect_of_ourselves_is_refuted_by_incrementing() -> None:
    m = cluster("a")
    out = m.on_suspect(Suspect("me", 1, "a"), 1.0)
    assert out.refuted and out.broadcast == Alive("me", 2, "10.0.0.1", b"")
    assert m.incarnation == 2 and member(m, "me").state is MemberState.ALIVE
    assert m.awareness.score == 1


def test_refutation_beats_a_higher_accusation() -> None:
    m = cluster("a")
    out = m.on_suspect(Suspect("me", 7, "a"), 1.0)
    assert out.refuted and m.incarnation == 8


def test_dead_of_ourselves_is_refuted() -> None:
    m = cluster("a")
    out = m.on_dead(Dead("me", 1, "a"), 1.0)
    assert out.refuted and m.incarnation == 2 and member(m, "me").state is MemberState.ALIVE


def test_alive_of_ourselves_with_other_data_is_refuted() -> None:
    m = cluster("a")
    assert not m.on_alive(Alive("me", 1, "10.0.0.1"), 1.0).applied  # our own echo
    assert not m.on_alive(Alive("me", 0, "10.0.0.1", b"old"), 1.0).applied  # older
    out = m.on_alive(Alive("me", 4, "10.0.0.1", b"forged"), 1.0)
    assert out.refuted and m.incarnation == 5 and member(m, "me").meta == b""


def test_dead_beats_suspect_at_the_same_incarnation() -> None:
    m = cluster("a", "b", "c", "d")
    m.on_suspect(Suspect("a", 1, "b"), 0.0)
    out = m.on_dead(Dead("a", 1, "c"), 1.0)
    assert out.applied and out.event is Event.LEAVE
    assert member(m, "a").state is MemberState.DEAD and "a" not in m.suspicions


def test_dead_beats_alive_at_the_same_incarnation_but_not_older() -> None:
    m = cluster("a", "b")
    assert not m.on_dead(Dead("a", 0, "b"), 1.0).applied
    assert m.on_dead(Dead("a", 1, "b"), 1.0).applied
    assert not m.on_dead(Dead("a", 2, "b"), 2.0).applied  # already dead


def test_dead_then_higher_alive_rejoins() -> None:
    m = cluster("a")
    m.on_dead(Dead("a", 1, "b"), 1.0)
    assert not m.on_alive(Alive("a", 1, "10.0.1.0"), 2.0).applied
    out = m.on_alive(Alive("a", 2, "10.0.1.0"), 2.0)
    assert out.event is Event.JOIN and member(m, "a").state is MemberState.ALIVE


def test_suspect_of_dead_is_ignored() -> None:
    m = cluster("a")
    m.on_dead(Dead("a", 1, "b"), 1.0)
    assert not m.on_suspect(Suspect("a", 1, "b"), 2.0).applied
    assert member(m, "a").state is MemberState.DEAD


def test_dead_from_itself_is_left() -> None:
    m = cluster("a")
    m.on_dead(Dead("a", 1, "a"), 1.0)
    assert member(m, "a").state is MemberState.LEFT


def test_suspicion_timeout_declares_dead_from_us() -> None:
    m = cluster("a", "b", "c", "d")
    m.suspect_local("a", 0.0)
    assert m.expire(23.9) == []
    (out,) = m.expire(24.0)
    assert out.broadcast == Dead("a", 1, "me") and member(m, "a").state is MemberState.DEAD


def test_suspicion_in_a_small_cluster_uses_min() -> None:
    m = cluster("a")  # n = 2 < k + 2: no confirmations expected
    m.suspect_local("a", 0.0)
    assert m.suspicions["a"].deadline == 4.0
    assert len(m.expire(4.0)) == 1


def test_refuted_suspicion_does_not_expire() -> None:
    m = cluster("a", "b", "c", "d")
    m.suspect_local("a", 0.0)
    m.on_alive(Alive("a", 2, "10.0.1.0"), 1.0)
    assert m.expire(100.0) == [] and member(m, "a").state is MemberState.ALIVE


def test_leave_marks_us_left_and_ignores_our_alives() -> None:
    m = cluster("a")
    out = m.leave(1.0)
    assert out.broadcast == Dead("me", 1, "me") and member(m, "me").state is MemberState.LEFT
    assert not m.on_alive(Alive("me", 9, "10.0.0.1"), 2.0).applied


def test_other_address_cannot_take_a_live_name() -> None:
    m = cluster("a")
    assert not m.on_alive(Alive("a", 9, "10.9.9.9"), 1.0).applied
    assert member(m, "a").addr == "10.0.1.0"


def test_dead_name_is_reclaimed_after_reclaim_time() -> None:
    from dataclasses import replace

    m = Membership(local="me", addr="10.0.0.1", config=replace(GossipConfig(), dead_node_reclaim_time=10.0))
    m.on_alive(Alive("a", 3, "10.0.1.0"), 0.0)
    m.on_dead(Dead("a", 3, "b"), 1.0)
    assert not m.on_alive(Alive("a", 1, "10.9.9.9"), 5.0).applied
    out = m.on_alive(Alive("a", 1, "10.9.9.9"), 12.0)  # a restarted member at a new address, incarnation reset
    assert out.event is Event.JOIN and member(m, "a").addr == "10.9.9.9"


def test_push_pull_dead_becomes_a_suspicion() -> None:
    m = cluster("a", "b")
    out = m.merge_remote("a", 1, "10.0.1.0", b"", MemberState.DEAD, 1.0)
    assert out.applied and member(m, "a").state is MemberState.SUSPECT
    m.merge_remote("b", 1, "10.0.1.1", b"", MemberState.LEFT, 1.0)
    assert member(m, "b").state is MemberState.LEFT
    out = m.merge_remote("c", 1, "10.0.1.2", b"", MemberState.ALIVE, 1.0)
    assert out.event is Event.JOIN


def test_estimated_size_excludes_the_gone() -> None:
    m = cluster("a", "b")
    m.on_dead(Dead("b", 1, "a"), 1.0)
    assert m.estimated_size() == 2


def test_on_message_dispatches() -> None:
    m = cluster("a", "b", "c", "d")
    assert m.on_message(Suspect("a", 1, "b"), 0.0).applied
    assert m.on_message(Dead("a", 1, "b"), 0.0).applied
    assert m.on_message(Alive("a", 2, "10.0.1.0"), 0.0).event is Event.JOIN
