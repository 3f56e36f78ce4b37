"""The BFB server's parsers: Range headers, sizes and fault specs (errors say what is wrong)."""

from __future__ import annotations

import pytest

from dpfd.sim.bfb_server import ByteRange, Fault, Unsatisfiable, parse_fault, parse_range, parse_size


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-0", ByteRange(0, 1)),
        ("bytes=10-19", ByteRange(10, 20)),
        ("bytes=10-", ByteRange(10, 100)),
        ("bytes=90-500", ByteRange(90, 100)),
        ("bytes=-10", ByteRange(90, 100)),
        ("bytes=-500", ByteRange(0, 100)),
        ("bytes=20-10", None),  # invalid: ignored, the whole image is sent
        ("bytes=0-1,5-6", None),  # several ranges: not supported, ignored
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=abc-", None),
    ],
)
def test_parse_range(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-160", "bytes=-0"])
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, 100)


@pytest.mark.parametrize(
    ("text", "size"), [("123", 123), ("4k", 4096), ("8MiB", 8 << 20), ("2 GB", 2 << 30), ("1G", 1 << 30)]
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-5", "1.5M", "3T"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("missing=404", Fault(status=404)),
        ("oops=500", Fault(status=500)),
        ("stuck=hang", Fault(hang=True)),
        ("flaky=drop:1MiB", Fault(drop_after=1 << 20)),
        ("once=drop:1000:1", Fault(drop_after=1000, drop_times=1)),
        ("frozen=stall:64k", Fault(stall_after=65536)),
        ("slow=slow:100k", Fault(rate=102400)),
        ("bad=corrupt:99", Fault(corrupt_at=99)),
        ("images/doca=404", Fault(status=404)),
    ],
)
def test_parse_fault(spec: str, fault: Fault) -> None:
    name, parsed = parse_fault(spec)
    assert name == spec.split("=")[0] and parsed == fault


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ("missing", "expected NAME=KIND"),
        ("=404", "expected NAME=KIND"),
        ("x=explode", "kind must be"),
        ("x=drop", "invalid size ''"),
        ("x=drop:5:many", "invalid literal"),
        ("x=corrupt:here", "invalid literal"),
        ("x=hang:3", "kind must be"),
    ],
)
def test_parse_fault_rejects_with_the_reason(spec: str, why: str) -> None:
    with pytest.raises(ValueError, match=f"invalid fault '{spec}'") as e:
        parse_fault(spec)
    assert why in str(e.value)
