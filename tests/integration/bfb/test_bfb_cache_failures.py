"""Every BFB download failure reason, each produced by a real condition (DPF issue #29: say why a URL is bad)."""

from __future__ import annotations

import hashlib
import os
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bfb_harness import SIZE, full_backlog_port, image_digest, self_signed_context, silent_server

from dpfd.host.bfb import BfbCache, BfbFetchError, FetchReason, Progress
from dpfd.host.bfb.layout import url_key
from dpfd.sim.bfb_server import BfbServerConfig, BfbServerHandle, Fault, start_bfb_server
from dpfd.sim.ports import free_port


async def expect_failure(cache: BfbCache, url: str, reason: FetchReason, **kwargs: str) -> BfbFetchError:
    with pytest.raises(BfbFetchError) as failed:
        await cache.fetch(url, **kwargs)  # type: ignore[arg-type]
    assert failed.value.reason == reason, failed.value
    assert cache.path_for(url) is None
    if (cache.root / "sha256").exists():
        assert os.listdir(cache.root / "sha256") == []  # never a half image among the finished ones
    return failed.value


async def test_an_unresolvable_host_is_a_dns_failure(cache: BfbCache) -> None:
    url = "http://bfb-images.dpf-test.invalid/doca.bfb"
    error = await expect_failure(cache, url, FetchReason.DNS_FAILURE)
    assert "bfb-images.dpf-test.invalid" in error.message and url in error.message


async def test_a_closed_port_is_connection_refused(cache: BfbCache) -> None:
    port = free_port()
    error = await expect_failure(cache, f"http://127.0.0.1:{port}/doca.bfb", FetchReason.CONNECTION_REFUSED)
    assert error.message == f"connection refused by 127.0.0.1:{port} for http://127.0.0.1:{port}/doca.bfb"


@pytest.mark.parametrize(("status", "words"), [(404, "Not Found"), (500, "Internal Server Error"), (403, "Forbidden")])
async def test_an_error_status_is_an_http_error_naming_the_status(
    bfb_server: BfbServerHandle, cache: BfbCache, status: int, words: str
) -> None:
    bfb_server.config.faults["broken"] = Fault(status=status)
    url = bfb_server.url_for("broken")
    error = await expect_failure(cache, url, FetchReason.HTTP_ERROR)
    assert error.message == f"HTTP {status} {words} from {url}"
    assert str(error) == f"HTTPError: HTTP {status} {words} from {url}"


async def test_a_path_the_server_does_not_have_is_a_404(bfb_server: BfbServerHandle, cache: BfbCache) -> None:
    url = f"{bfb_server.url}/images/readme.txt"  # the sim serves only *.bfb
    error = await expect_failure(cache, url, FetchReason.HTTP_ERROR)
    assert error.message == f"HTTP 404 Not Found from {url}"


async def test_https_to_a_plain_http_port_is_a_tls_error(bfb_server: BfbServerHandle, cache: BfbCache) -> None:
    url = f"https://127.0.0.1:{bfb_server.port}/doca.bfb"
    error = await expect_failure(cache, url, FetchReason.TLS_ERROR)
    assert f"127.0.0.1:{bfb_server.port}" in error.message


@pytest.fixture
async def tls_server(tmp_path: Path) -> AsyncIterator[tuple[BfbServerHandle, Path]]:
    context, cert = self_signed_context(tmp_path)
    handle = await start_bfb_server("127.0.0.1", 0, BfbServerConfig(default_size=SIZE), ssl_context=context)
    yield handle, cert
    await handle.close()


async def test_a_self_signed_certificate_is_a_tls_error_unless_trusted(
    tls_server: tuple[BfbServerHandle, Path], cache: BfbCache, tmp_path: Path
) -> None:
    server, cert = tls_server
    url = server.url_for("secure")
    assert url.startswith("https://")
    error = await expect_failure(cache, url, FetchReason.TLS_ERROR)
    assert "certificate" in error.message
    assert server.server.gets("secure") == []  # refused before any HTTP was spoken

    trusting = BfbCache(tmp_path / "trusting", ssl_context=ssl.create_default_context(cafile=str(cert)))
    async with trusting:
        image = await trusting.fetch(url)
    assert image.sha256 == image_digest("secure")


async def test_a_server_that_never_answers_is_a_timeout(tmp_path: Path) -> None:
    async with silent_server() as port, BfbCache(tmp_path / "bfb", idle_timeout=0.3, max_resumes=0) as c:
        url = f"http://127.0.0.1:{port}/doca.bfb"
        error = await expect_failure(c, url, FetchReason.TIMEOUT)
    assert error.message == f"no data from 127.0.0.1:{port} for 0.3s while fetching {url}"


async def test_a_server_that_stalls_mid_body_is_a_timeout(bfb_server: BfbServerHandle, tmp_path: Path) -> None:
    bfb_server.config.faults["stalling"] = Fault(stall_after=100_000)
    async with BfbCache(tmp_path / "bfb", idle_timeout=0.2, max_resumes=0) as c:
        url = bfb_server.url_for("stalling")
        await expect_failure(c, url, FetchReason.TIMEOUT)
        assert (c.root / "partial" / url_key(url)).stat().st_size > 0  # kept for the next attempt


async def test_no_connection_within_the_connect_timeout_is_a_timeout(tmp_path: Path) -> None:
    with full_backlog_port() as port:
        async with BfbCache(tmp_path / "bfb", connect_timeout=0.3) as c:
            url = f"http://127.0.0.1:{port}/doca.bfb"
            error = await expect_failure(c, url, FetchReason.TIMEOUT)
    assert error.message == f"no connection to 127.0.0.1:{port} within 0.3s for {url}"


async def test_a_hanging_http_handler_is_a_timeout(bfb_server: BfbServerHandle, tmp_path: Path) -> None:
    bfb_server.config.faults["hung"] = Fault(hang=True)
    async with BfbCache(tmp_path / "bfb", idle_timeout=0.3, max_resumes=0) as c:
        await expect_failure(c, bfb_server.url_for("hung"), FetchReason.TIMEOUT)


async def test_a_wrong_expected_checksum_discards_the_download(bfb_server: BfbServerHandle, cache: BfbCache) -> None:
    url = bfb_server.url_for("checked")
    wrong = hashlib.sha256(b"something else").hexdigest()
    seen: list[Progress] = []
    error = await expect_failure(
        cache, url, FetchReason.CHECKSUM_MISMATCH, expected_sha256=wrong, on_progress=seen.append
    )
    assert error.message.startswith(f"sha256 of {url} is {image_digest('checked')}, expected {wrong}")
    assert os.listdir(cache.root / "partial") == []  # a wrong image is not kept for resuming
    assert seen[-1].phase == "Error"

    right = await cache.fetch(url, expected_sha256="sha256:" + image_digest("checked").upper())
    assert right.sha256 == image_digest("checked")
    again = await cache.fetch(url, expected_sha256=image_digest("checked"))
    assert again.bytes_received == 0 and len(bfb_server.server.gets("checked")) == 2


async def test_a_corrupted_transfer_is_a_checksum_mismatch(bfb_server: BfbServerHandle, cache: BfbCache) -> None:
    bfb_server.config.faults["damaged"] = Fault(corrupt_at=12345)
    url = bfb_server.url_for("damaged")
    await expect_failure(cache, url, FetchReason.CHECKSUM_MISMATCH, expected_sha256=image_digest("damaged"))


async def test_a_malformed_expected_checksum_is_refused_before_any_request(
    bfb_server: BfbServerHandle, cache: BfbCache
) -> None:
    with pytest.raises(ValueError, match="expected_sha256 must be 64 hexadecimal digits"):
        await cache.fetch(bfb_server.url_for("x"), expected_sha256="abc")
    assert bfb_server.server.requests == []


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://mirror.example/doca.bfb", "the scheme must be http or https"),
        ("http:///doca.bfb", "no host name"),
        ("doca.bfb", "the scheme must be http or https"),
        ("http://mirror.example:99999/doca.bfb", "Port out of range"),
    ],
)
async def test_an_invalid_url_is_refused_with_the_reason(cache: BfbCache, url: str, why: str) -> None:
    error = await expect_failure(cache, url, FetchReason.INVALID_URL)
    assert why in error.message and repr(url) in error.message


async def test_an_unwritable_cache_root_is_a_disk_error(bfb_server: BfbServerHandle, tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("a file where the cache root should go")
    async with BfbCache(tmp_path / "not-a-dir" / "bfb") as c:
        with pytest.raises(BfbFetchError) as failed:
            await c.fetch(bfb_server.url_for("x"))
    assert failed.value.reason == FetchReason.DISK_ERROR
    assert "not-a-dir/bfb" in failed.value.message and "Not a directory" in failed.value.message
    assert bfb_server.server.requests == []  # failed before asking the server
