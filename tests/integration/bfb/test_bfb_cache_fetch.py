"""The BFB cache against a real HTTP server on loopback: downloads once, shares, resumes, re-downloads, forgets."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from pathlib import Path

import pytest
from bfb_harness import SIZE, image_digest

from dpfd.host.bfb import BfbCache, BfbFetchError, FetchReason, Progress
from dpfd.host.bfb.layout import url_key
from dpfd.sim.bfb_image import image_size, make_image
from dpfd.sim.bfb_server import BfbServerHandle, Fault, etag_for
from tests.waiting import eventually

TOTAL = image_size(SIZE)


async def test_five_concurrent_fetches_share_one_download_and_later_fetches_hit_the_cache(
    bfb_server: BfbServerHandle, cache: BfbCache
) -> None:
    url = bfb_server.url_for("doca-2.9")
    results = await asyncio.gather(*(cache.fetch(url) for _ in range(5)))

    assert len(bfb_server.server.gets("doca-2.9")) == 1
    assert {r.path for r in results} == {cache.root / "sha256" / image_digest("doca-2.9")}
    assert all(r.sha256 == image_digest("doca-2.9") and r.size == TOTAL for r in results)
    assert results[0].path.read_bytes() == make_image("doca-2.9", SIZE)
    assert results[0].path.stat().st_mode & 0o777 == 0o644
    index = json.loads((cache.root / "urls" / f"{url_key(url)}.json").read_text())
    assert index["url"] == url and index["sha256"] == image_digest("doca-2.9") and index["size"] == TOTAL
    assert index["etag"] == etag_for("doca-2.9", SIZE)
    assert os.listdir(cache.root / "partial") == []

    again = await cache.fetch(url)
    assert again.path == results[0].path and again.bytes_received == 0
    assert len(bfb_server.server.gets("doca-2.9")) == 1
    assert cache.path_for(url) == results[0].path


async def test_a_second_cache_on_the_same_root_finds_the_image(bfb_server: BfbServerHandle, tmp_path: Path) -> None:
    url = bfb_server.url_for("persisted")
    async with BfbCache(tmp_path / "bfb") as first:
        await first.fetch(url)
    async with BfbCache(tmp_path / "bfb") as second:
        hit = await second.fetch(url)
    assert hit.bytes_received == 0 and hit.sha256 == image_digest("persisted")
    assert len(bfb_server.server.gets("persisted")) == 1


async def test_different_urls_download_in_parallel_up_to_the_bound(bfb_server: BfbServerHandle, tmp_path: Path) -> None:
    bfb_server.config.faults["slow"] = Fault(rate=4 * SIZE)  # about a quarter of a second
    slow, quick = bfb_server.url_for("slow"), bfb_server.url_for("quick")

    async with BfbCache(tmp_path / "one", max_parallel=1) as one_at_a_time:
        await asyncio.gather(one_at_a_time.fetch(slow), one_at_a_time.fetch(quick))
    first, second = bfb_server.server.gets("slow")[0], bfb_server.server.gets("quick")[0]
    assert first.finished is not None and second.started >= first.finished

    bfb_server.server.requests.clear()
    async with BfbCache(tmp_path / "two", max_parallel=2) as two_at_a_time:
        await asyncio.gather(two_at_a_time.fetch(slow), two_at_a_time.fetch(quick))
    first, second = bfb_server.server.gets("slow")[0], bfb_server.server.gets("quick")[0]
    assert first.finished is not None and second.started < first.finished


async def test_progress_goes_from_downloading_to_ready_at_a_bounded_rate(
    bfb_server: BfbServerHandle, tmp_path: Path
) -> None:
    url = bfb_server.url_for("progress")
    seen: list[Progress] = []
    async with BfbCache(tmp_path / "bfb", progress_interval=0.0, progress_min_bytes=256 << 10) as c:
        await c.fetch(url, on_progress=seen.append)
    assert seen[0] == Progress(url, 0, None, "Downloading")
    assert seen[-1] == Progress(url, TOTAL, TOTAL, "Ready")
    middle = seen[1:-1]
    assert middle and all(p.phase == "Downloading" and p.bytes_total == TOTAL for p in middle)
    done = [p.bytes_done for p in seen[:-1]]
    assert all(b - a >= 256 << 10 for a, b in itertools.pairwise(done))
    assert len(middle) <= TOTAL // (256 << 10)

    quiet: list[Progress] = []
    async with BfbCache(tmp_path / "quiet", progress_interval=60.0) as c:
        await c.fetch(url, on_progress=quiet.append)
    assert [p.phase for p in quiet] == ["Downloading", "Ready"]  # no more than one report a minute

    hit: list[Progress] = []
    async with BfbCache(tmp_path / "quiet") as c:
        await c.fetch(url, on_progress=hit.append)
    assert hit == [Progress(url, TOTAL, TOTAL, "Ready")]


async def test_a_dropped_connection_is_resumed_with_a_range_request(
    bfb_server: BfbServerHandle, cache: BfbCache
) -> None:
    bfb_server.config.faults["flaky"] = Fault(drop_after=300_000)  # every response breaks after 300 kB
    result = await cache.fetch(bfb_server.url_for("flaky"))

    assert result.sha256 == image_digest("flaky") and result.size == TOTAL
    gets = bfb_server.server.gets("flaky")
    assert gets[0].range is None and len(gets) >= 4  # at most 300 kB per response
    starts = [int(g.range.removeprefix("bytes=").removesuffix("-")) for g in gets[1:] if g.range]
    assert len(starts) == len(gets) - 1 and starts == sorted(set(starts)) and starts[0] > 0
    assert all(g.status == 206 for g in gets[1:])
    assert TOTAL <= bfb_server.server.bytes_sent("flaky") < 2 * TOTAL


async def test_a_failed_download_resumes_on_the_next_fetch(bfb_server: BfbServerHandle, tmp_path: Path) -> None:
    bfb_server.config.faults["once"] = Fault(drop_after=400_000, drop_times=1)
    url = bfb_server.url_for("once")
    async with BfbCache(tmp_path / "bfb", max_resumes=0) as c:
        with pytest.raises(BfbFetchError) as failed:
            await c.fetch(url)
        assert failed.value.reason == FetchReason.CONNECTION_LOST
        assert "400000 of" in failed.value.message or "lost" in failed.value.message
        kept = (c.root / "partial" / url_key(url)).stat().st_size
        assert 0 < kept <= 400_000
        assert os.listdir(c.root / "sha256") == []
        assert c.path_for(url) is None

        result = await c.fetch(url)
    assert result.sha256 == image_digest("once")
    resumed = bfb_server.server.gets("once")[1]
    assert resumed.range == f"bytes={kept}-" and resumed.status == 206
    assert result.bytes_received == TOTAL - kept


async def test_a_changed_file_restarts_the_download_instead_of_splicing(
    bfb_server: BfbServerHandle, tmp_path: Path
) -> None:
    bfb_server.config.faults["moving"] = Fault(drop_after=400_000, drop_times=1)
    url = bfb_server.url_for("moving")
    async with BfbCache(tmp_path / "bfb", max_resumes=0) as c:
        with pytest.raises(BfbFetchError):
            await c.fetch(url)
        bfb_server.config.sizes["moving"] = SIZE // 2  # a new version: new bytes, new ETag
        result = await c.fetch(url)
    assert result.sha256 == image_digest("moving", SIZE // 2) and result.size == image_size(SIZE // 2)
    second = bfb_server.server.gets("moving")[1]
    assert second.range is not None and second.status == 200  # If-Range did not match: the whole new file


async def test_a_complete_partial_left_by_a_crash_is_filed_after_a_416(
    bfb_server: BfbServerHandle, cache: BfbCache
) -> None:
    url = bfb_server.url_for("crashed")
    partial = cache.root / "partial" / url_key(url)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(make_image("crashed", SIZE))
    meta = {"url": url, "etag": etag_for("crashed", SIZE), "last_modified": None, "total": TOTAL}
    partial.with_suffix(".json").write_text(json.dumps(meta))

    result = await cache.fetch(url)
    assert result.sha256 == image_digest("crashed") and result.bytes_received == 0
    assert [(g.range, g.status) for g in bfb_server.server.gets("crashed")] == [(f"bytes={TOTAL}-", 416)]
    assert not partial.exists()


async def test_a_partial_longer_than_the_file_is_dropped_and_fetched_again(
    bfb_server: BfbServerHandle, cache: BfbCache
) -> None:
    url = bfb_server.url_for("shrunk")
    partial = cache.root / "partial" / url_key(url)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * (TOTAL + 10))
    meta = {"url": url, "etag": etag_for("shrunk", SIZE), "last_modified": None, "total": TOTAL + 10}
    partial.with_suffix(".json").write_text(json.dumps(meta))

    result = await cache.fetch(url)
    assert result.sha256 == image_digest("shrunk")
    assert [(g.range, g.status) for g in bfb_server.server.gets("shrunk")] == [
        (f"bytes={TOTAL + 10}-", 416),
        (None, 200),
    ]


async def test_a_vanished_or_truncated_image_is_downloaded_again(bfb_server: BfbServerHandle, cache: BfbCache) -> None:
    url = bfb_server.url_for("vanishing")
    first = await cache.fetch(url)
    first.path.unlink()
    assert cache.path_for(url) is None
    again = await cache.fetch(url)
    assert again.path == first.path and again.path.read_bytes() == make_image("vanishing", SIZE)
    assert len(bfb_server.server.gets("vanishing")) == 2

    os.truncate(again.path, 1000)
    third = await cache.fetch(url)
    assert third.size == TOTAL and third.path.stat().st_size == TOTAL
    assert len(bfb_server.server.gets("vanishing")) == 3


async def test_gc_keeps_the_urls_asked_for_and_drops_the_rest(bfb_server: BfbServerHandle, tmp_path: Path) -> None:
    keep, drop, half = (bfb_server.url_for(n) for n in ("keep", "drop", "half"))
    bfb_server.config.faults["half"] = Fault(drop_after=100_000)
    async with BfbCache(tmp_path / "bfb", max_resumes=0) as c:
        kept = await c.fetch(keep)
        dropped = await c.fetch(drop)
        with pytest.raises(BfbFetchError):
            await c.fetch(half)  # leaves a partial file
        assert (c.root / "partial" / url_key(half)).exists()

        result = await c.gc({keep})

        assert result.urls == [drop]
        assert TOTAL + 100_000 <= result.bytes_freed < TOTAL + 100_000 + 4096  # image, partial bytes, its record
        assert c.path_for(keep) == kept.path and kept.path.exists()
        assert c.path_for(drop) is None and not dropped.path.exists()
        assert os.listdir(c.root / "partial") == []
        assert os.listdir(c.root / "sha256") == [kept.sha256]
        assert (await c.fetch(keep)).bytes_received == 0


async def test_remove_keeps_an_image_another_url_still_names(bfb_server: BfbServerHandle, cache: BfbCache) -> None:
    plain, same_bytes = bfb_server.url_for("shared"), bfb_server.url_for("shared") + f"?size={SIZE}"
    a = await cache.fetch(plain)
    b = await cache.fetch(same_bytes)
    assert a.path == b.path and len(os.listdir(cache.root / "sha256")) == 1

    assert await cache.remove(plain) is True
    assert cache.path_for(plain) is None and cache.path_for(same_bytes) == b.path
    assert await cache.remove(same_bytes) is True
    assert not b.path.exists()
    assert await cache.remove(same_bytes) is False


async def test_remove_stops_a_download_in_progress(bfb_server: BfbServerHandle, cache: BfbCache) -> None:
    bfb_server.config.faults["big-slow"] = Fault(rate=SIZE // 4)  # four seconds: removed long before the end
    url = bfb_server.url_for("big-slow")
    fetching = asyncio.create_task(cache.fetch(url))
    await eventually(lambda: bfb_server.server.bytes_sent("big-slow") > 0, what="the download to start")

    assert await cache.remove(url) is True
    with pytest.raises(BfbFetchError) as stopped:
        await fetching
    assert stopped.value.reason == FetchReason.CANCELLED
    assert os.listdir(cache.root / "partial") == [] and cache.path_for(url) is None
    await eventually(
        lambda: bfb_server.server.gets("big-slow")[0].finished is not None, what="the server to see the close"
    )


async def test_one_cancelled_caller_does_not_stop_the_others_but_the_last_one_does(
    bfb_server: BfbServerHandle, cache: BfbCache
) -> None:
    bfb_server.config.faults["shared-slow"] = Fault(rate=SIZE * 2)
    url = bfb_server.url_for("shared-slow")
    impatient = asyncio.create_task(cache.fetch(url))
    patient = asyncio.create_task(cache.fetch(url))
    await eventually(lambda: bfb_server.server.bytes_sent("shared-slow") > 0, what="the download to start")
    impatient.cancel()
    result = await patient
    assert impatient.cancelled() and result.sha256 == image_digest("shared-slow")
    assert len(bfb_server.server.gets("shared-slow")) == 1

    bfb_server.config.faults["abandoned"] = Fault(rate=SIZE // 4)
    url = bfb_server.url_for("abandoned")
    only = asyncio.create_task(cache.fetch(url))
    await eventually(lambda: bfb_server.server.bytes_sent("abandoned") > 0, what="the download to start")
    only.cancel()
    with pytest.raises(asyncio.CancelledError):
        await only
    await eventually(lambda: bfb_server.server.gets("abandoned")[0].finished is not None, what="the transfer to stop")
    sent = bfb_server.server.bytes_sent("abandoned")
    assert sent < TOTAL
    partial = cache.root / "partial" / url_key(url)
    await eventually(lambda: partial.exists() and partial.stat().st_size > 0, what="received bytes kept for resume")
