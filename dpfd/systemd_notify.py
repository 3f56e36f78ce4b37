"""sd_notify(3) by hand: READY, STATUS, WATCHDOG and STOPPING to systemd over NOTIFY_SOCKET.

Every call is a no-op when dpfd does not run under a Type=notify unit (NOTIFY_SOCKET unset).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping


class SystemdNotifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        # A leading '@' names a socket in the abstract namespace (a NUL byte on the wire).
        self._address: str | bytes | None = ("\0" + addr[1:]).encode() if addr.startswith("@") else addr or None
        self.watchdog_interval = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send `KEY=value` lines in one datagram; False if not under systemd or the send failed."""
        if self._address is None:
            return False
        try:
            # Non-blocking: a reader that falls behind must never stall the event loop.
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as s:
                s.connect(self._address)
                s.send("\n".join(fields).encode())
            return True
        except OSError:
            return False  # systemd gone or its queue full: notifications are best effort

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    async def run_watchdog(self) -> None:
        """Ping every WATCHDOG_USEC/2 until cancelled; returns at once if no watchdog is asked for."""
        if self.watchdog_interval is None or not self.enabled:
            return
        while True:
            self.watchdog()
            await asyncio.sleep(self.watchdog_interval)


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    with contextlib.suppress(ValueError):
        if pid and int(pid) != os.getpid():
            return None  # the watchdog is meant for another process (e.g. our parent)
        value = int(usec)
        if value > 0:
            return value / 2 / 1_000_000
    return None
