"""Progress fan-out: rate-limited byte counts, phase changes always, late joiners told at once."""

from __future__ import annotations

import pytest

from dpfd.host.bfb.progress import Progress, ProgressFanout

URL = "http://mirror/doca.bfb"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_byte_counts_at_most_once_per_interval_and_min_bytes() -> None:
    clock = Clock()
    fanout = ProgressFanout(URL, interval=1.0, min_bytes=1000, clock=clock)
    seen: list[Progress] = []
    fanout.add(seen.append)
    fanout.emit(Progress(URL, 0, None, "Downloading"))
    fanout.bytes(5000, 10_000)  # too soon
    clock.now += 1.0
    fanout.bytes(5500, 10_000)  # interval passed, enough bytes since the last report (0)
    clock.now += 5.0
    fanout.bytes(6000, 10_000)  # interval passed but only 500 new bytes
    fanout.bytes(6500, 10_000)  # 1000 bytes: reported
    fanout.emit(Progress(URL, 10_000, 10_000, "Ready"))  # phase changes are never held back
    assert [(p.bytes_done, p.phase) for p in seen] == [
        (0, "Downloading"),
        (5500, "Downloading"),
        (6500, "Downloading"),
        (10_000, "Ready"),
    ]


def test_a_late_listener_learns_the_last_progress_at_once_and_a_removed_one_hears_nothing() -> None:
    fanout = ProgressFanout(URL, interval=0.0, min_bytes=0)
    fanout.emit(Progress(URL, 42, 100, "Downloading"))
    late: list[Progress] = []
    fanout.add(late.append)
    assert late == [Progress(URL, 42, 100, "Downloading")]
    fanout.discard(late.append)
    fanout.bytes(50, 100)
    assert len(late) == 1


def test_a_failing_listener_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    fanout = ProgressFanout(URL, interval=0.0, min_bytes=0)

    def broken(_: Progress) -> None:
        raise RuntimeError("listener bug")

    seen: list[Progress] = []
    fanout.add(broken)
    fanout.add(seen.append)
    fanout.emit(Progress(URL, 1, 2, "Downloading"))
    assert seen == [Progress(URL, 1, 2, "Downloading")]
    assert "progress callback failed" in caplog.text
