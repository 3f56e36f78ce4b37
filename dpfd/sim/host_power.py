"""An emulated host's power and uptime for dpf-sim: what `ipmitool chassis power cycle` and `/proc/uptime` are
on a real host. The boot time lives in a small JSON file, so a restarted dpfd sees the same host."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dpfd.agent.statefile import write_atomic


class EmulatedHostPower:
    """Reboots take `reboot_seconds`; `uptime()` restarts from zero after each. Counts reboots per method."""

    def __init__(self, state_file: Path, *, reboot_seconds: float = 0.0, clock: Callable[[], float] = time.time):
        self.state_file = Path(state_file)
        self.reboot_seconds = reboot_seconds
        self.clock = clock
        if not self.state_file.exists():
            # A host that has been up for a day when the simulation starts.
            self._write({"bootedAt": clock() - 86400.0, "reboots": {}})

    def _read(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data

    def _write(self, state: dict[str, Any]) -> None:
        write_atomic(self.state_file, json.dumps(state, sort_keys=True).encode())

    def uptime(self) -> float:
        return max(0.0, self.clock() - float(self._read()["bootedAt"]))

    @property
    def reboots(self) -> dict[str, int]:
        return dict(self._read().get("reboots", {}))

    async def reboot(self, method: str) -> None:
        if method not in ("cycle", "reset"):
            raise ValueError(f"unknown reboot method {method!r} (cycle or reset)")
        await asyncio.sleep(self.reboot_seconds)
        state = self._read()
        state["bootedAt"] = self.clock()
        state["reboots"][method] = int(state["reboots"].get(method, 0)) + 1
        self._write(state)
