import pytest

from dpfd.gossip.lifeguard import (
    Awareness,
    Suspicion,
    probe_awareness_delta,
    remaining_suspicion_time,
    retransmit_limit,
    suspicion_bounds,
    suspicion_timeout,
)


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 4.0), (1, 4.0), (10, 4.0), (50, 6.792), (100, 8.0), (1000, 12.0), (10000, 16.0)],
)
def test_suspicion_timeout(n: int, expected: float) -> None:
    # 4 * max(1, log10 n) * 1 s, node scale kept to the millisecond: log10(50) = 1.69897 -> 1.698
    assert suspicion_timeout(4, n, 1.0) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("n", "expected"), [(0, 0), (1, 4), (9, 4), (10, 8), (99, 8), (100, 12), (1000, 16), (10000, 20)]
)
def test_retransmit_limit(n: int, expected: int) -> None:
    assert retransmit_limit(4, n) == expected


@pytest.mark.parametrize(
    ("n", "k", "elapsed", "expected"),
    # memberlist's TestSuspicion_remainingSuspicionTime, min 2 s, max 30 s
    [
        (0, 3, 0.0, 30.0),
        (1, 3, 2.0, 14.0),
        (2, 3, 3.0, 4.810),
        (3, 3, 4.0, -2.0),
        (4, 3, 5.0, -3.0),
        (5, 3, 10.0, -8.0),
    ],
)
def test_remaining_suspicion_time(n: int, k: int, elapsed: float, expected: float) -> None:
    assert remaining_suspicion_time(n, k, elapsed, 2.0, 30.0) == pytest.approx(expected)


def test_suspicion_bounds_lan_defaults() -> None:
    assert suspicion_bounds(4, 6, 100, 1.0) == (2, 8.0, 48.0)
    assert suspicion_bounds(4, 6, 1000, 1.0) == (2, 12.0, 72.0)
    # fewer than k members besides the suspect and us can confirm: k drops to 0
    assert suspicion_bounds(4, 6, 3, 1.0) == (0, 4.0, 24.0)
    assert suspicion_bounds(4, 6, 4, 1.0)[0] == 2


def test_suspicion_shrinks_with_independent_confirmations() -> None:
    s = Suspicion(start=100.0, k=2, min_s=4.0, max_s=24.0, accuser="a")
    assert s.deadline == 124.0
    assert not s.confirm("a", 101.0)  # the accuser does not count twice
    assert s.confirm("b", 101.0)
    # n=1 of k=2: 24 - log(2)/log(3) * 20 = 11.381 s from the start
    assert s.deadline == pytest.approx(111.381)
    assert not s.confirm("b", 102.0)
    assert s.confirm("c", 102.0)
    assert s.deadline == pytest.approx(104.0)  # n = k: min
    assert not s.confirm("d", 102.0)  # already at k
    assert not s.expired(103.999)
    assert s.expired(104.0)


def test_suspicion_confirmation_after_min_fires_now() -> None:
    s = Suspicion(start=0.0, k=2, min_s=4.0, max_s=24.0, accuser="a")
    assert s.confirm("b", 20.0)  # remaining 11.381 - 20 < 0
    assert s.deadline == 20.0
    assert s.expired(20.0)


def test_suspicion_without_expected_confirmations_starts_at_min() -> None:
    s = Suspicion(start=0.0, k=0, min_s=4.0, max_s=24.0, accuser="a")
    assert s.deadline == 4.0
    assert not s.confirm("b", 1.0)


def test_awareness_clamps_and_scales() -> None:
    a = Awareness(max_multiplier=8)
    assert a.healthy and a.scale(0.5) == 0.5
    assert a.apply_delta(-1) == 0
    assert a.apply_delta(3) == 3
    assert a.scale(1.0) == 4.0 and not a.healthy
    assert a.apply_delta(100) == 7  # max multiplier 8 -> score 0..7
    assert a.scale(0.5) == 4.0
    assert a.apply_delta(-2) == 5


@pytest.mark.parametrize(
    ("acked", "expected_nacks", "nacks", "delta"),
    [(True, 0, 0, -1), (True, 3, 0, -1), (False, 0, 0, 1), (False, 3, 3, 0), (False, 3, 1, 2), (False, 3, 0, 3)],
)
def test_probe_awareness_delta(acked: bool, expected_nacks: int, nacks: int, delta: int) -> None:
    assert probe_awareness_delta(acked, expected_nacks, nacks) == delta
