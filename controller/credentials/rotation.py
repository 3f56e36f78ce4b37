"""When a token is renewed, after DPF's expiration.go (itself after the kubelet's token manager): once 80 % of its
lifetime has passed, or once it is 24 hours old, each moved earlier by a jitter of up to 10 s; the next look is
scheduled at that point plus a jitter of up to 10 s. Times are seconds since the epoch; `jitter` is a draw from
[0, 1) so tests can fix it."""

from __future__ import annotations

MAX_JITTER = 10  # seconds
MAX_TTL = 24 * 3600  # seconds: an older token is renewed whatever its lifetime


def lifetime(expires: float, issued: float) -> int:
    return int(expires - issued)


def _jitter_seconds(draw: float) -> int:
    return int(draw * MAX_JITTER)  # Go truncates the jitter to whole seconds


def requires_refresh(expires: float, issued: float, now: float, draw: float) -> bool:
    ttl = lifetime(expires, issued)
    jitter = _jitter_seconds(draw)
    if now > issued + MAX_TTL - jitter:
        return True
    return now > expires - (ttl * 20) // 100 - jitter


def next_refresh(expires: float, issued: float, draw: float) -> float:
    """When to look again. DPF waits for 80 % of the lifetime even when the token turns 24 hours old sooner (and
    then renews it on that late look); here the earlier of the two, so a long-lived token is renewed on time."""
    ttl = lifetime(expires, issued)
    due = min(expires - (ttl * 20) // 100, issued + MAX_TTL)
    return due + _jitter_seconds(draw)
