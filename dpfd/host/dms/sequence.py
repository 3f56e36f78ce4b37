"""DPF's whole flashing sequence against one DMS: mode, BFB, bf.cfg, activate, reboot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dpfd.host.dms.client import CFG_SUFFIX, DEFAULT_CHUNK, DmsClient

Report = Callable[[str], None]


@dataclass(frozen=True)
class FlashResult:
    """Versions as DPF names them: BFB = its file name, bf.cfg = `<dpu>.cfg`, activated = `<bfb>;<dpu>.cfg`."""

    bfb_version: str
    bf_cfg_version: str
    activated: str
    bfb_transferred: bool


def bf_cfg_version(dpu_name: str) -> str:
    """The version DPF v24.10 gives a DPU's bf.cfg."""
    return f"{dpu_name}{CFG_SUFFIX}"


async def flash(
    dms: DmsClient,
    dpu_name: str,
    bfb: Path,
    bf_cfg: bytes,
    report: Report = lambda line: None,
    chunk_size: int = DEFAULT_CHUNK,
    reboot_poll: float = 3.0,
    reboot_timeout: float = 1800.0,
) -> FlashResult:
    """Run the sequence, calling `report` with one line per step and per 10 % of BFB progress."""
    bfb_version = bfb.name
    cfg_version = bf_cfg_version(dpu_name)
    activated = f"{bfb_version};{cfg_version}"

    report("set DPU mode: DPU")
    await dms.set_dpu_mode("DPU")

    last_tenth = -1

    def progress(received: int, total: int) -> None:
        nonlocal last_tenth
        tenth = received * 10 // total if total else 10
        if tenth > last_tenth:
            last_tenth = tenth
            report(f"install {bfb_version}: {received}/{total} bytes ({received * 100 // max(total, 1)}%)")

    report(f"install BFB {bfb_version}")
    result = await dms.install(bfb_version, bfb, chunk_size=chunk_size, on_progress=progress)
    report(f"BFB {bfb_version}: " + ("validated" if result.transferred else "already installed, not sent again"))

    report(f"install bf.cfg {cfg_version} ({len(bf_cfg)} bytes)")
    await dms.install_bf_cfg(cfg_version, bf_cfg)

    report(f"activate {activated}")
    await dms.activate(activated)

    report("wait for the DPU to reboot")
    await dms.wait_reboot_done(poll=reboot_poll, timeout=reboot_timeout)
    report("reboot done")
    return FlashResult(bfb_version, cfg_version, activated, result.transferred)
