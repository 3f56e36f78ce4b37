"""ovs-ofctl as an asyncio subprocess: OpenFlow 1.4 bundles (atomic) and flow dumps of one bridge."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

OPENFLOW: Final = "OpenFlow14"
_COOKIE = re.compile(r"\bcookie=(0x[0-9a-fA-F]+|\d+)")


class OfctlError(RuntimeError):
    """ovs-ofctl failed; the message carries its command and stderr."""


@dataclass(frozen=True)
class Ofctl:
    """Runs ovs-ofctl against one bridge.

    `target` is what ovs-ofctl takes as the switch: a bridge name (found through OVS_RUNDIR) or
    `unix:<rundir>/<bridge>.mgmt`. `argv` is the ovs-ofctl command (a wrapper such as `ip netns exec ...` in front
    is fine); `env` is added to the environment (OVS_RUNDIR for a private Open vSwitch).
    """

    target: str
    argv: Sequence[str] = ("ovs-ofctl",)
    env: dict[str, str] | None = None
    timeout: float = 30.0

    async def run(self, *args: str, stdin: str | None = None) -> str:
        cmd = [*self.argv, "-O", OPENFLOW, *args]
        env = {**os.environ, **self.env} if self.env is not None else None
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(stdin.encode() if stdin is not None else None), self.timeout
            )
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise OfctlError(f"{' '.join(cmd[:6])}: no answer within {self.timeout:g}s") from None
        if proc.returncode != 0:
            msg = err.decode(errors="replace").strip() or f"exit status {proc.returncode}"
            raise OfctlError(f"{' '.join(cmd)} failed: {msg}")
        return out.decode(errors="replace")

    async def bundle(self, lines: Sequence[str]) -> None:
        """Apply add/delete lines (ovs-ofctl's add-flows file syntax) in one atomic OpenFlow bundle."""
        if not lines:
            return
        await self.run("--bundle", "add-flows", self.target, "-", stdin="\n".join(lines) + "\n")

    async def open_bundle(self) -> BundleStream:
        """Start `--bundle add-flows` reading its lines as they are written (see BundleStream)."""
        cmd = [*self.argv, "-O", OPENFLOW, "--bundle", "add-flows", self.target, "-"]
        env = {**os.environ, **self.env} if self.env is not None else None
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        return BundleStream(proc, cmd, self.timeout)

    async def replace_flows(self, lines: Sequence[str]) -> None:
        """Make the bridge's flows exactly `lines`, atomically."""
        await self.run("--bundle", "replace-flows", self.target, "-", stdin="\n".join(lines) + "\n")

    async def dump_flows(self, match: str = "") -> list[str]:
        """The bridge's flows (without statistics), one line each."""
        args = ["--no-stats", "dump-flows", self.target]
        if match:
            args.append(match)
        out = await self.run(*args)
        return [line.strip() for line in out.splitlines() if line.strip() and "actions=" in line]


def flow_cookie(line: str) -> int:
    """The cookie of a dump-flows line (0 when it shows none)."""
    m = _COOKIE.search(line)
    if m is None:
        return 0
    return int(m.group(1), 0)


class BundleStream:
    """One `ovs-ofctl --bundle add-flows` fed while its lines are still being made.

    ovs-ofctl reads and parses every line before it opens the bundle, so the bundle is as atomic as one written
    at once; writing as chains come lets ovs-ofctl start and parse while dpfd builds the next chains. `close`
    ends the input and waits for the bundle; a line ovs-ofctl refused makes it raise OfctlError with
    ovs-ofctl's message (writes after ovs-ofctl gave up are dropped; close reports why).
    """

    def __init__(self, proc: asyncio.subprocess.Process, cmd: list[str], timeout: float) -> None:
        self.proc = proc
        self.cmd = cmd
        self.timeout = timeout
        self.lines = 0
        self._broken = False

    async def write(self, lines: Sequence[str]) -> None:
        stdin = self.proc.stdin
        if self._broken or not lines or stdin is None:
            return
        self.lines += len(lines)
        try:
            stdin.write(("\n".join(lines) + "\n").encode())
            await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            self._broken = True

    async def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()  # communicate() without input leaves stdin open
        try:
            _, err = await asyncio.wait_for(self.proc.communicate(), self.timeout)
        except TimeoutError:
            await self.abort()
            raise OfctlError(f"{' '.join(self.cmd[:6])}: no answer within {self.timeout:g}s") from None
        if self.proc.returncode != 0:
            msg = err.decode(errors="replace").strip() or f"exit status {self.proc.returncode}"
            raise OfctlError(f"{' '.join(self.cmd)} failed: {msg}")

    async def abort(self) -> None:
        """Kill ovs-ofctl: a bundle it had not committed dies with its OpenFlow connection (nothing of it
        applied); one it had committed was applied whole."""
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
