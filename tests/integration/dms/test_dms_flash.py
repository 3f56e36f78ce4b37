"""DPF's flashing sequence against the emulated DMS over real gRPC on loopback (mTLS unless said otherwise)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dpfd.host.dms import DmsClient, DmsError, DmsTlsError, DmsUnreachable, TlsFiles
from dpfd.host.dms.certs import CertPaths
from dpfd.host.dms.sequence import flash
from dpfd.sim.bluefield.dms_server import EmulatedDms
from dpfd.sim.bluefield.dms_state import STATE_FILE, load_state
from tests.integration.dms.conftest import StartDms

BF_CFG = b"#!/bin/bash\n# bf.cfg for dpu-1\nBFB_VERSION=test\n"


async def test_full_sequence_over_mtls(
    start_dms: StartDms, server_tls: TlsFiles, client_tls: TlsFiles, bfb: Path
) -> None:
    dms = await start_dms(tls=server_tls, name="dpu-1")
    lines: list[str] = []
    async with DmsClient(dms.address, client_tls, name="dpu-1") as client:
        result = await flash(client, "dpu-1", bfb, BF_CFG, report=lines.append, reboot_poll=0.05, reboot_timeout=20)
        running = await client.verify()

    assert result.activated == f"{bfb.name};dpu-1.cfg" and result.bfb_transferred
    assert running == bfb.name
    stats = dms.stats()
    assert (stats["installs"], stats["activations"], stats["reboots"]) == (2, 1, 1)
    assert (stats["mode"], stats["running_version"], stats["running_bf_cfg"]) == ("DPU", bfb.name, "dpu-1.cfg")
    assert dms.bf_cfg("dpu-1.cfg") == BF_CFG
    # progress lines came from DMS's TransferProgress, up to the whole image
    progress = [line for line in lines if "bytes (" in line]
    assert len(progress) >= 3
    assert lines[0] == "set DPU mode: DPU" and lines[-1] == "reboot done"
    # counters and images persisted for `dpf-sim status`
    assert dms.state_dir is not None
    saved = json.loads((dms.state_dir / STATE_FILE).read_text())
    assert (saved["installs"], saved["activations"], saved["reboots"]) == (2, 1, 1)
    assert saved["installed"][bfb.name]["size"] == bfb.stat().st_size


async def test_install_reports_progress_and_the_version_dms_validated(
    start_dms: StartDms, server_tls: TlsFiles, client_tls: TlsFiles, bfb: Path
) -> None:
    dms = await start_dms(tls=server_tls)
    seen: list[tuple[int, int]] = []
    async with DmsClient(dms.address, client_tls) as client:
        result = await client.install(bfb.name, bfb, chunk_size=10_000, on_progress=lambda r, t: seen.append((r, t)))
    size = bfb.stat().st_size
    assert result.transferred and result.bytes_sent == size and result.version == bfb.name
    assert seen and all(t == size for _, t in seen)
    assert [r for r, _ in seen] == sorted(r for r, _ in seen) and seen[-1][0] <= size
    assert dms.state.installed[bfb.name].kind == "bfb"


async def test_an_installed_version_is_validated_without_a_transfer(
    start_dms: StartDms, server_tls: TlsFiles, client_tls: TlsFiles, bfb: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "persist"
    dms = await start_dms(tls=server_tls, state_dir=state_dir)
    async with DmsClient(dms.address, client_tls) as client:
        first = await client.install(bfb.name, bfb)
        again = await client.install(bfb.name, bfb)
    assert first.transferred and not again.transferred and again.bytes_sent == 0
    assert dms.state.installs == 1

    # The image store survives a DMS restart (DPF's BFB volume does too).
    await dms.stop()
    restarted = await start_dms(tls=server_tls, state_dir=state_dir)
    async with DmsClient(restarted.address, client_tls) as client:
        after_restart = await client.install(bfb.name, bfb)
    assert not after_restart.transferred
    assert load_state(state_dir).installs == 1


async def test_bf_cfg_is_sent_again_even_when_installed(start_dms: StartDms, bfb: Path) -> None:
    dms = await start_dms()
    async with DmsClient(dms.address) as client:
        await client.install_bf_cfg("dpu-1.cfg", b"first")
        second = await client.install_bf_cfg("dpu-1.cfg", b"second")
    assert second.transferred
    assert dms.bf_cfg("dpu-1.cfg") == b"second"


async def test_client_certificate_from_another_ca_is_refused_with_a_tls_error(
    start_dms: StartDms, server_tls: TlsFiles, certs: CertPaths, other_certs: CertPaths
) -> None:
    dms = await start_dms(tls=server_tls)
    wrong = TlsFiles(certs.ca, other_certs.client_cert, other_certs.client_key)
    async with DmsClient(dms.address, wrong, name="dpu-1", rpc_timeout=5) as client:
        with pytest.raises(DmsTlsError) as err:
            await client.set_dpu_mode()
    msg = str(err.value)
    assert msg.startswith(f"DMS dpu-1 ({dms.address}): gNMI Set nvidia/mode/config/mode=DPU: ")
    assert "refused this client's certificate" in msg and str(other_certs.client_cert) in msg
    assert dms.state.mode == "DPU" and dms.state.installs == 0


async def test_server_certificate_from_another_ca_is_a_tls_error(
    start_dms: StartDms, server_tls: TlsFiles, certs: CertPaths, other_certs: CertPaths
) -> None:
    dms = await start_dms(tls=server_tls)
    untrusting = TlsFiles(other_certs.ca, certs.client_cert, certs.client_key)
    async with DmsClient(dms.address, untrusting, rpc_timeout=5) as client:
        with pytest.raises(DmsTlsError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.verify()


async def test_insecure_client_against_mtls_server_says_so(start_dms: StartDms, server_tls: TlsFiles) -> None:
    dms = await start_dms(tls=server_tls)
    async with DmsClient(dms.address, None, rpc_timeout=5) as client:
        with pytest.raises(DmsTlsError, match="speaks TLS but this client was configured insecure"):
            await client.verify()


async def test_nothing_listening_is_unreachable(start_dms: StartDms) -> None:
    dms = await start_dms()
    address = dms.address
    await dms.stop()
    async with DmsClient(address, rpc_timeout=5) as client:
        with pytest.raises(DmsUnreachable, match=re.escape(f"DMS {address}: OS.Activate 'x': UNAVAILABLE")):
            await client.activate("x")


async def test_mode_set_accepts_dpu_and_nic_and_rejects_others(start_dms: StartDms) -> None:
    dms: EmulatedDms = await start_dms()
    async with DmsClient(dms.address) as client:
        await client.set_dpu_mode("NIC")
        assert dms.state.mode == "NIC"
        await client.set_dpu_mode("DPU")
        assert dms.state.mode == "DPU"
        with pytest.raises(DmsError, match="INVALID_ARGUMENT: nvidia/mode/config/mode must be one of DPU, NIC"):
            await client.set_dpu_mode("SWITCH")
    assert dms.state.mode == "DPU"
