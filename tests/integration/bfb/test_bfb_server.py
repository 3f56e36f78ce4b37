"""The synthetic BFB server over real HTTP: whole images, ranges, validators, faults, and its command line."""

from __future__ import annotations

import asyncio
import re
import sys

import aiohttp
import pytest
from bfb_harness import SIZE

from dpfd.sim.bfb_image import ImageVerifier, image_size, make_image
from dpfd.sim.bfb_server import LAST_MODIFIED, BfbServerHandle, Fault, etag_for
from tests.waiting import eventually

TOTAL = image_size(SIZE)


async def test_get_serves_the_whole_image_with_validators(bfb_server: BfbServerHandle) -> None:
    async with aiohttp.ClientSession() as http, http.get(bfb_server.url_for("bf-bundle")) as resp:
        body = await resp.read()
        assert resp.status == 200
        assert resp.headers["ETag"] == etag_for("bf-bundle", SIZE)
        assert resp.headers["Last-Modified"] == LAST_MODIFIED
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert resp.content_length == TOTAL
    assert body == make_image("bf-bundle", SIZE)
    verifier = ImageVerifier()
    verifier.feed(body)
    assert verifier.ok()


async def test_head_gives_the_size_without_a_body(bfb_server: BfbServerHandle) -> None:
    async with aiohttp.ClientSession() as http, http.head(bfb_server.url_for("bf-bundle")) as resp:
        assert resp.status == 200
        assert int(resp.headers["Content-Length"]) == TOTAL
        assert await resp.read() == b""
    assert bfb_server.server.requests[0].method == "HEAD" and bfb_server.server.bytes_sent("bf-bundle") == 0


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=1000-", 1000, TOTAL),
        ("bytes=-80", TOTAL - 80, TOTAL),
        ("bytes=10-99999999", 10, TOTAL),
    ],
)
async def test_a_range_gets_206_with_exactly_those_bytes(
    bfb_server: BfbServerHandle, header: str, start: int, end: int
) -> None:
    async with aiohttp.ClientSession() as http, http.get(bfb_server.url_for("r"), headers={"Range": header}) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes {start}-{end - 1}/{TOTAL}"
        assert await resp.read() == make_image("r", SIZE)[start:end]


async def test_an_unsatisfiable_range_gets_416_with_the_size(bfb_server: BfbServerHandle) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.get(bfb_server.url_for("r"), headers={"Range": f"bytes={TOTAL}-"}) as resp,
    ):
        assert resp.status == 416
        assert resp.headers["Content-Range"] == f"bytes */{TOTAL}"


async def test_if_range_with_a_stale_validator_gets_the_whole_image(bfb_server: BfbServerHandle) -> None:
    headers = {"Range": "bytes=100-", "If-Range": '"some-older-version"'}
    async with aiohttp.ClientSession() as http, http.get(bfb_server.url_for("r"), headers=headers) as resp:
        assert resp.status == 200 and len(await resp.read()) == TOTAL
    headers["If-Range"] = etag_for("r", SIZE)
    async with aiohttp.ClientSession() as http, http.get(bfb_server.url_for("r"), headers=headers) as resp:
        assert resp.status == 206 and len(await resp.read()) == TOTAL - 100


async def test_size_per_name_by_query_or_config(bfb_server: BfbServerHandle) -> None:
    bfb_server.config.sizes["small"] = 1000
    async with aiohttp.ClientSession() as http:
        async with http.get(bfb_server.url_for("small")) as resp:
            assert await resp.read() == make_image("small", 1000)
        async with http.get(bfb_server.url_for("q") + "?size=2KiB") as resp:
            assert await resp.read() == make_image("q", 2048)
            assert resp.headers["ETag"] == etag_for("q", 2048)
        async with http.get(bfb_server.url_for("q") + "?size=lots") as resp:
            assert resp.status == 400 and "invalid size 'lots'" in await resp.text()


async def test_only_bfb_paths_are_served(bfb_server: BfbServerHandle) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/", "/image.iso", "/.bfb"):
            async with http.get(bfb_server.url + path) as resp:
                assert resp.status == 404, path


async def test_faults_status_drop_corrupt_and_slow(bfb_server: BfbServerHandle) -> None:
    faults = bfb_server.config.faults
    faults["gone"] = Fault(status=404)
    faults["cut"] = Fault(drop_after=5000, drop_times=1)
    faults["bad"] = Fault(corrupt_at=7)
    faults["slow"] = Fault(rate=SIZE)  # about one second for the image
    async with aiohttp.ClientSession() as http:
        async with http.get(bfb_server.url_for("gone")) as resp:
            assert resp.status == 404
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.get(bfb_server.url_for("cut")) as resp:
                await resp.read()
        async with http.get(bfb_server.url_for("cut")) as resp:  # only the first response was dropped
            assert await resp.read() == make_image("cut", SIZE)
        async with http.get(bfb_server.url_for("bad")) as resp:
            body = await resp.read()
        good = make_image("bad", SIZE)
        assert body[7] == good[7] ^ 0xFF and body[:7] + body[8:] == good[:7] + good[8:]
        loop = asyncio.get_running_loop()
        began = loop.time()
        async with http.get(bfb_server.url_for("slow"), headers={"Range": f"bytes=0-{SIZE // 4 - 1}"}) as resp:
            await resp.read()
        assert loop.time() - began >= 0.2  # a quarter of the image at SIZE bytes/s


async def test_the_command_line_serves_with_faults() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dpfd.sim.bfb_server",
        "--listen",
        "127.0.0.1:0",
        "--size",
        "64KiB",
        "--name-size",
        "big=128KiB",
        "--fault",
        "missing=404",
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        m = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        assert m, line
        base = m.group(1)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/doca.bfb") as resp:
                assert await resp.read() == make_image("doca", 64 << 10)
            async with http.head(f"{base}/big.bfb") as resp:
                assert resp.content_length == image_size(128 << 10)
            async with http.get(f"{base}/missing.bfb") as resp:
                assert resp.status == 404
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_the_command_line_refuses_a_bad_fault_with_the_reason() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dpfd.sim.bfb_server",
        "--fault",
        "x=explode",
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert "invalid fault 'x=explode'" in err.decode()


async def test_a_client_that_goes_away_ends_a_hung_request(bfb_server: BfbServerHandle) -> None:
    bfb_server.config.faults["hung"] = Fault(hang=True)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.2)) as http:
        with pytest.raises(aiohttp.ServerTimeoutError):
            async with http.get(bfb_server.url_for("hung")) as resp:
                await resp.read()
    await eventually(lambda: bfb_server.server.requests[0].finished is not None, what="the hung handler to end")
