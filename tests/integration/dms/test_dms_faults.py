"""Failures DMS can report, injected in the emulated DMS, and how the client surfaces them."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import pytest

from dpfd.host.dms import DmsActivateError, DmsClient, DmsInstallError, DmsTimeout
from dpfd.host.dms.client import MAX_BF_CFG
from dpfd.sim.bfb_image import make_image
from dpfd.sim.bluefield.dms_server import DmsFaults
from tests.integration.dms.conftest import StartDms
from tests.waiting import eventually


async def test_corrupted_transfer_is_integrity_fail(start_dms: StartDms, bfb: Path) -> None:
    dms = await start_dms(faults=DmsFaults(corrupt_transfer=True), name="dpu-1")
    async with DmsClient(dms.address, name="dpu-1") as client:
        with pytest.raises(DmsInstallError) as err:
            await client.install(bfb.name, bfb)
    assert err.value.error_type == "INTEGRITY_FAIL"
    assert "does not match the trailer" in err.value.detail
    assert f"DMS dpu-1 ({dms.address}): OS.Install '{bfb.name}'" in str(err.value)
    assert "InstallError INTEGRITY_FAIL" in str(err.value)
    assert dms.state.installed == {} and dms.state.installs == 0


async def test_a_damaged_file_is_integrity_fail_and_a_foreign_one_parse_fail(
    start_dms: StartDms, tmp_path: Path
) -> None:
    damaged = bytearray(make_image("img", 100_000))
    damaged[50_000] ^= 0x01
    (tmp_path / "damaged.bfb").write_bytes(bytes(damaged))
    (tmp_path / "foreign.bfb").write_bytes(b"\x00" * 100_000)
    dms = await start_dms()
    async with DmsClient(dms.address) as client:
        with pytest.raises(DmsInstallError) as damaged_err:
            await client.install("damaged.bfb", tmp_path / "damaged.bfb")
        with pytest.raises(DmsInstallError) as foreign_err:
            await client.install("foreign.bfb", tmp_path / "foreign.bfb")
    assert damaged_err.value.error_type == "INTEGRITY_FAIL"
    assert foreign_err.value.error_type == "PARSE_FAIL" and "no DPFSIM-SHA256 trailer" in foreign_err.value.detail


async def test_install_error_mid_transfer_stops_the_stream(start_dms: StartDms, bfb: Path) -> None:
    dms = await start_dms(faults=DmsFaults(install_error="TOO_LARGE"))
    async with DmsClient(dms.address) as client:
        with pytest.raises(DmsInstallError) as err:
            await client.install(bfb.name, bfb, chunk_size=4096)
    assert err.value.error_type == "TOO_LARGE" and "injected fault after 4096 bytes" in err.value.detail
    assert dms.state.installs == 0


async def test_a_second_concurrent_install_is_refused(start_dms: StartDms, bfb: Path) -> None:
    # A slow link keeps the first install busy for about 3 s.
    dms = await start_dms(faults=DmsFaults(slow_link_bytes_per_s=100_000))
    async with DmsClient(dms.address) as client:
        first = asyncio.create_task(client.install(bfb.name, bfb))
        await eventually(lambda: dms.installing, what="first install under way")
        with pytest.raises(DmsInstallError) as err:
            await client.install_bf_cfg("dpu-1.cfg", b"cfg")
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    assert err.value.error_type == "INSTALL_IN_PROGRESS"
    await eventually(lambda: not dms.installing, what="cancelled install released")
    assert dms.state.installs == 0


async def test_install_time_is_proportional_to_size(start_dms: StartDms, bfb: Path) -> None:
    rate = 1_000_000.0
    dms = await start_dms(install_bytes_per_s=rate)
    loop = asyncio.get_running_loop()
    async with DmsClient(dms.address) as client:
        started = loop.time()
        await client.install(bfb.name, bfb)
        took = loop.time() - started
    assert took >= 0.9 * bfb.stat().st_size / rate


async def test_oversized_bf_cfg_is_refused_before_sending(start_dms: StartDms) -> None:
    dms = await start_dms()
    async with DmsClient(dms.address) as client:
        with pytest.raises(ValueError, match=f"over DMS's limit of {MAX_BF_CFG} bytes"):
            await client.install_bf_cfg("dpu-1.cfg", b"x" * (MAX_BF_CFG + 1))
        with pytest.raises(ValueError, match=re.escape("must end with '.cfg'")):
            await client.install_bf_cfg("dpu-1.conf", b"x")
    assert dms.state.installed == {}


async def test_activating_what_is_not_installed_is_non_existent_version(start_dms: StartDms, bfb: Path) -> None:
    dms = await start_dms()
    async with DmsClient(dms.address, name="dpu-1") as client:
        await client.install(bfb.name, bfb)
        with pytest.raises(DmsActivateError) as err:
            await client.activate(f"{bfb.name};dpu-1.cfg")
    assert err.value.error_type == "NON_EXISTENT_VERSION" and err.value.detail == "not installed: dpu-1.cfg"
    assert dms.state.activations == 0 and dms.up.is_set()


async def test_reboot_closes_the_port_then_reopens_it(start_dms: StartDms, bfb: Path) -> None:
    dms = await start_dms(reboot_seconds=1.0)
    port = dms.port
    async with DmsClient(dms.address) as client:
        await client.install(bfb.name, bfb)
        await client.activate(bfb.name)
        await eventually(lambda: not dms.up.is_set(), what="port closed for the reboot")
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
        status = await client.wait_reboot_done(poll=0.05, timeout=20)
    assert not status.active and status.count == 1 and status.reason == f"activate {bfb.name}"
    assert dms.port == port and dms.state.running_version == bfb.name


async def test_activate_without_reboot_waits_for_the_next_one(start_dms: StartDms, bfb: Path) -> None:
    dms = await start_dms()
    async with DmsClient(dms.address) as client:
        await client.install(bfb.name, bfb)
        await client.activate(bfb.name, no_reboot=True)
        assert dms.state.running_version == "" and dms.state.reboots == 0
        assert not (await client.reboot_status()).active


async def test_reboot_that_never_completes_times_out(start_dms: StartDms, bfb: Path) -> None:
    dms = await start_dms(faults=DmsFaults(reboot_never_completes=True))
    async with DmsClient(dms.address, name="dpu-1") as client:
        await client.install(bfb.name, bfb)
        await client.activate(bfb.name)
        with pytest.raises(DmsTimeout) as err:
            await client.wait_reboot_done(poll=0.05, timeout=1.5)
    msg = str(err.value)
    assert msg.startswith(f"DMS dpu-1 ({dms.address}): wait for reboot (System.RebootStatus CPU): ")
    assert "reboot not done after 1.5s" in msg and "unreachable" in msg
    assert dms.state.reboots == 1 and not dms.up.is_set()


async def test_content_before_transfer_request_is_refused(start_dms: StartDms) -> None:
    import grpc

    from dpfd.host.dms.framing import INSTALL_METHOD, frame_content, serialize_install_request
    from dpfd.proto.gnoi.os import os_pb2

    dms = await start_dms()
    async with grpc.aio.insecure_channel(dms.address) as channel:
        call = channel.stream_stream(
            INSTALL_METHOD,
            request_serializer=serialize_install_request,
            response_deserializer=os_pb2.InstallResponse.FromString,
        )()
        await call.write(frame_content(b"data"))
        resp = await call.read()
    assert resp.install_error.type == os_pb2.InstallError.UNSPECIFIED
    assert resp.install_error.detail == "the first InstallRequest must be a transfer_request"
    assert dms.state.installs == 0
