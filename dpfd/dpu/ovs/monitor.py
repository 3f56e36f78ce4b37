"""Notices ovs-vswitchd (re)starting through the OVSDB monitor, without polling.

A restarted ovs-vswitchd leaves almost no trace in OVSDB: it rewrites cur_cfg, ofport, datapath_id, version and
status columns with the values they already had (tested: SIGTERM and SIGKILL, userspace datapath), and it has
lost every OpenFlow rule. One thing reliably changes: a patch port's MAC (Interface `mac_in_use`) is random per
ovs-vswitchd process and written at start, and a running ovs-vswitchd never changes it. So dpfd keeps a canary
patch pair on the bridge (`dpfmon0` <-> `dpfmon1`, Port external_ids dpf-type=monitor; no flows use it, so no
traffic) and calls back whenever dpfmon0's MAC becomes a new value, or the canary is removed (then it is made
again). The first fill after dpfd made the canary while ovs-vswitchd was down also counts: it just started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from dpfd.dpu.ovs.connection import OvsdbConnection, RowChange, snapshot
from dpfd.dpu.ovs.ports import DPF_TYPE, PortSpec
from dpfd.dpu.ovs.sync import SyncOwnedPorts

log = logging.getLogger(__name__)

CANARY = ("dpfmon0", "dpfmon1")
MONITOR_KEY = "dpf-monitor"  # Interface external_ids key of the canary (not dpf-id: it is no ServiceInterface)
MONITOR_TYPE = "monitor"  # Port external_ids dpf-type of the canary: stale-port collection must keep it

OnRestart = Callable[[], Awaitable[None]]


def canary_ports(bridge: str) -> list[PortSpec]:
    a, b = CANARY
    ext = {DPF_TYPE: MONITOR_TYPE}
    return [PortSpec(bridge, a, "patch", {"peer": b}, ext), PortSpec(bridge, b, "patch", {"peer": a}, ext)]


def _mac(value: Any) -> str:
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")


class VswitchdMonitor:
    """Calls `on_restart()` (on the event loop, one call at a time, coalesced) after ovs-vswitchd (re)started."""

    def __init__(self, conn: OvsdbConnection, bridge: str, on_restart: OnRestart, apply_timeout: float = 5.0) -> None:
        self.conn = conn
        self.bridge = bridge
        self.on_restart = on_restart
        self.apply_timeout = apply_timeout
        self.mac = ""  # dpfmon0's MAC as last seen: identifies the running ovs-vswitchd
        self.restarts = 0  # restarts noticed (each starts a callback run)
        self._unlisten: Callable[[], None] | None = None
        self._runner: asyncio.Task[None] | None = None
        self._pending = False
        self._ensuring: asyncio.Task[None] | None = None
        self._starting = False
        self._filled = asyncio.Event()

    async def start(self) -> None:
        """Make the canary (if missing), learn the running ovs-vswitchd's MAC (none if it is down), then watch."""
        self._starting = True
        self._unlisten = self.conn.listen("Interface", ("name", "mac_in_use"), self._on_change)
        try:
            applied = await self._ensure()
            self.mac = await self.conn.read(self._read_mac) or self.mac
            if applied and not self.mac:  # vswitchd is up and fills in the new canary's MAC in a moment
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._filled.wait(), self.apply_timeout)
        finally:
            self._starting = False

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for task in (self._runner, self._ensuring):
            if task is not None and not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def _read_mac(self, tables: Any) -> str:
        for row in tables["Interface"].rows.values():
            if row.name == CANARY[0]:
                return _mac(snapshot(row, ("mac_in_use",))["mac_in_use"])
        return ""

    async def _ensure(self) -> bool:
        """Make the canary if it is missing; False if ovs-vswitchd did not apply that in time (it is down)."""
        [result] = await self.conn.execute(
            SyncOwnedPorts(self.conn.api, self.bridge, canary_ports(self.bridge), key=MONITOR_KEY)
        )
        if result.next_cfg is None:
            return True
        return await self.conn.wait_applied(result.next_cfg, self.apply_timeout)

    def _on_change(self, change: RowChange) -> None:
        if change.row.get("name") != CANARY[0]:
            return
        if change.event == "delete":
            log.warning("OVS: the vswitchd canary %s was removed; making it again and resyncing", CANARY[0])
            self.mac = ""
            if self._ensuring is None or self._ensuring.done():
                self._ensuring = asyncio.get_running_loop().create_task(self._ensure_logged())
            self._fire()
            return
        mac = _mac(change.row.get("mac_in_use"))
        if self._starting:
            if mac:
                self.mac = mac
                self._filled.set()
            return
        if mac and mac != self.mac:
            was, self.mac = self.mac, mac
            log.info("OVS: ovs-vswitchd started (canary MAC %s -> %s)", was or "none", mac)
            self._fire()

    async def _ensure_logged(self) -> None:
        try:
            await self._ensure()
        except Exception as e:
            log.warning("OVS: cannot make the vswitchd canary on %s: %s", self.bridge, e)

    def _fire(self) -> None:
        self.restarts += 1
        self._pending = True
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while self._pending:
            self._pending = False
            try:
                await self.on_restart()
            except Exception:
                log.exception("OVS: restoring after an ovs-vswitchd restart failed")
