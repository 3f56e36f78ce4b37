"""IPAM test fixtures: a Store on the session etcd, and a second process that contends with the test."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("contender.py")
REPO = Path(__file__).resolve().parents[3]


class Contender:
    """contender.py in its own process: connects, says "ready", waits for "go" on stdin, runs, prints JSON."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *args: str) -> Contender:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(WORKER), *args, cwd=REPO,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if line.strip() != b"ready":
            err = await proc.stderr.read() if proc.stderr else b""
            raise AssertionError(f"contender did not start: {line!r} {err.decode(errors='replace')}")
        return cls(proc)

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")

    async def result(self) -> object:
        out, err = await asyncio.wait_for(self.proc.communicate(), 60)
        assert self.proc.returncode == 0, f"contender failed: {err.decode(errors='replace')}"
        return json.loads(out.decode().strip().splitlines()[-1])


@pytest.fixture
async def contenders() -> AsyncIterator[list[Contender]]:
    started: list[Contender] = []
    yield started
    for c in started:
        if c.proc.returncode is None:
            c.proc.kill()
            await c.proc.wait()
