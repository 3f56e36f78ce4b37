"""Inputs the BFB cache refuses before doing anything: bad URLs, digests and settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpfd.host.bfb import BfbCache, BfbFetchError, FetchReason, validate_url
from dpfd.host.bfb.layout import CacheLayout, IndexEntry, url_key


@pytest.mark.parametrize(
    "url", ["http://mirror/doca.bfb", "https://mirror.example:8443/a/b/doca.bfb", "http://[2001:db8::1]/x.bfb"]
)
def test_valid_urls(url: str) -> None:
    assert validate_url(url).host


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("file:///srv/doca.bfb", "scheme must be http or https"),
        ("mirror/doca.bfb", "scheme must be http or https"),
        ("https://", "no host name"),
        ("http://mirror:port/x.bfb", "invalid BFB URL"),
    ],
)
def test_invalid_urls(url: str, why: str) -> None:
    with pytest.raises(BfbFetchError) as e:
        validate_url(url)
    assert e.value.reason == FetchReason.INVALID_URL and why in e.value.message


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"max_parallel": 0}, "max_parallel must be at least 1"),
        ({"connect_timeout": 0}, "connect_timeout must be a positive"),
        ({"idle_timeout": -1.0}, "idle_timeout must be a positive"),
        ({"max_resumes": -1}, "must not be negative"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: dict[str, float], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        BfbCache(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_a_damaged_index_entry_reads_as_absent(tmp_path: Path) -> None:
    layout = CacheLayout(tmp_path)
    layout.ensure()
    entry = IndexEntry("http://mirror/a.bfb", "0" * 64, 10, '"e"', None)
    layout.write_index(entry)
    assert layout.read_index(url_key(entry.url)) == entry
    layout.index_path(url_key(entry.url)).write_text("{not json")
    assert layout.read_index(url_key(entry.url)) is None
    layout.index_path(url_key(entry.url)).write_text('{"url": "x"}')
    assert layout.read_index(url_key(entry.url)) is None
