"""The host's power, as DPF reboots a host after a flash: `ipmitool chassis power cycle|reset` (BMC), and the
uptime from /proc/uptime that tells the reboot happened."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dpfd.host.provisioning.deps import ProvisioningFailure

DEFAULT_COMMANDS: dict[str, tuple[str, ...]] = {
    "cycle": ("ipmitool", "chassis", "power", "cycle"),
    "reset": ("ipmitool", "chassis", "power", "reset"),
}


class CommandHostPower:
    """Runs the configured command for a reboot method. On success the host goes down, and dpfd with it: the
    provisioning progress on disk carries the reboot request to the next boot."""

    def __init__(self, commands: dict[str, tuple[str, ...]] | None = None, proc_root: Path = Path("/proc")) -> None:
        self.commands = dict(commands or DEFAULT_COMMANDS)
        self.proc_root = proc_root

    def uptime(self) -> float:
        return float((self.proc_root / "uptime").read_text().split()[0])

    async def reboot(self, method: str) -> None:
        argv = self.commands.get(method)
        if argv is None:
            raise ProvisioningFailure("HostRebootFailed", f"no command configured for reboot method {method!r}")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
        except OSError as e:
            raise ProvisioningFailure("HostRebootFailed", f"cannot run {' '.join(argv)}: {e.strerror or e}") from None
        _, err = await proc.communicate()
        if proc.returncode != 0:
            tail = err.decode(errors="replace").strip()[-300:]
            raise ProvisioningFailure(
                "HostRebootFailed", f"{' '.join(argv)} exited with {proc.returncode}: {tail or '(no output)'}"
            )
