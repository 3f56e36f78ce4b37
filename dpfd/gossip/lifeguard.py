"""Lifeguard (Dadgar et al., 2017) as hashicorp/memberlist applies it: dynamic suspicion, local health awareness,
and the scaling formulas of memberlist's ``util.go``. Pure: the caller passes the clock."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def suspicion_timeout(suspicion_mult: int, n: int, probe_interval: float) -> float:
    """Minimum suspicion timeout: ``suspicion_mult * max(1, log10(max(1, n))) * probe_interval``.

    Like memberlist, the node scale keeps millisecond precision (``time.Duration(nodeScale*1000)``).
    """
    node_scale = max(1.0, math.log10(max(1.0, float(n))))
    return suspicion_mult * math.floor(node_scale * 1000) * probe_interval / 1000


def retransmit_limit(retransmit_mult: int, n: int) -> int:
    """How many times one update is piggybacked: ``retransmit_mult * ceil(log10(n + 1))``."""
    return retransmit_mult * math.ceil(math.log10(n + 1))


def remaining_suspicion_time(n: int, k: int, elapsed: float, min_s: float, max_s: float) -> float:
    """memberlist's ``remainingSuspicionTime``: the timeout falls from max to min on a log scale as the n-th of k
    independent confirmations arrives, floored to the millisecond and never below min; minus the time elapsed."""
    frac = math.log(n + 1.0) / math.log(k + 1.0)
    raw = max_s - frac * (max_s - min_s)
    timeout = math.floor(1000.0 * raw) / 1000.0
    timeout = max(timeout, min_s)
    return timeout - elapsed


@dataclass(slots=True)
class Suspicion:
    """The suspicion timer of one member (memberlist's ``suspicion``).

    ``k`` confirmations are expected; the accuser who started it is in ``confirmations`` but does not count.
    With ``k < 1`` the timer starts at ``min_s``, otherwise at ``max_s``. The caller fires when ``now >= deadline``.
    """

    start: float
    k: int
    min_s: float
    max_s: float
    accuser: str
    n: int = 0
    confirmations: set[str] = field(default_factory=set)
    deadline: float = 0.0

    def __post_init__(self) -> None:
        self.confirmations.add(self.accuser)
        self.deadline = self.start + (self.max_s if self.k >= 1 else self.min_s)

    def confirm(self, from_: str, now: float) -> bool:
        """Count an independent confirmation; True when it was new (the caller then re-gossips the suspicion)."""
        if self.n >= self.k or from_ in self.confirmations:
            return False
        self.confirmations.add(from_)
        self.n += 1
        remaining = remaining_suspicion_time(self.n, self.k, now - self.start, self.min_s, self.max_s)
        self.deadline = now + max(0.0, remaining)
        return True

    def expired(self, now: float) -> bool:
        return now >= self.deadline


def suspicion_bounds(
    suspicion_mult: int, max_timeout_mult: int, n: int, probe_interval: float
) -> tuple[int, float, float]:
    """(k, min, max) for a new suspicion in a cluster of n members, as ``memberlist.suspectNode`` computes them:
    k = suspicion_mult - 2, or 0 when fewer than k other members could confirm (n - 2 < k)."""
    min_s = suspicion_timeout(suspicion_mult, n, probe_interval)
    max_s = max_timeout_mult * min_s
    k = suspicion_mult - 2
    if n - 2 < k:
        k = 0
    return k, min_s, max_s


@dataclass(slots=True)
class Awareness:
    """Local health awareness (memberlist's ``awareness``): a score in 0..max_multiplier-1; timeouts are scaled by
    ``score + 1``. Deltas: -1 for a probe answered, +1 for a failed probe without nack-capable helpers, +missed
    nacks when helpers were asked, +1 for each refutation of a suspicion about ourselves."""

    max_multiplier: int
    score: int = 0

    def apply_delta(self, delta: int) -> int:
        """Apply delta, clamp, and return the new score."""
        self.score = min(max(self.score + delta, 0), self.max_multiplier - 1)
        return self.score

    def scale(self, timeout: float) -> float:
        return timeout * (self.score + 1)

    @property
    def healthy(self) -> bool:
        return self.score == 0


def probe_awareness_delta(acked: bool, expected_nacks: int, nacks: int) -> int:
    """The awareness delta after one probe (memberlist ``probeNode``): -1 if acked; else the missing nacks from
    the indirect helpers that support them, or +1 when none do."""
    if acked:
        return -1
    if expected_nacks > 0:
        return max(0, expected_nacks - nacks)
    return 1
