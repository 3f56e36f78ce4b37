"""Shared pieces of the admin socket tests: real gossip members, and callers running as nobody."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from dpfd.gossip.agent import GossipAgent
from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import Keyring
from dpfd.gossip.meta import MemberMeta
from dpfd.gossip.view import MemberInfo

NOBODY = 65534
CLIENT = Path(__file__).with_name("nobody_client.py")
KEY = b"admin-test-key-0123456789abcdef!"  # 32 bytes


def as_user(uid: int, groups: list[int]) -> Callable[[], None]:
    def drop() -> None:
        os.setgroups(groups)
        os.setgid(uid)
        os.setuid(uid)

    return drop


@cache
def python_for_nobody() -> str | None:
    """An interpreter nobody can run: ours may live under /root."""
    candidates = [sys.executable, os.path.realpath(sys.executable), "/usr/bin/python3", shutil.which("python3") or ""]
    for candidate in dict.fromkeys(c for c in candidates if c):
        try:
            done = subprocess.run(
                [candidate, "-c", "pass"], preexec_fn=as_user(NOBODY, []), capture_output=True, timeout=20
            )
        except OSError:
            continue
        if done.returncode == 0:
            return candidate
    return None


def require_root_and_nobody_python() -> str:
    if os.geteuid() != 0:
        pytest.skip("needs root: runs callers as another user")
    py = python_for_nobody()
    if py is None:
        pytest.skip("no Python interpreter the nobody user may run")
    return py


async def probe_as_nobody(admin: Path) -> str:
    py = require_root_and_nobody_python()
    proc = await asyncio.create_subprocess_exec(
        py, str(CLIENT), "probe", str(admin), preexec_fn=as_user(NOBODY, []), stdout=subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return out.decode().strip()


@dataclass
class Relay:
    """A socket the test's (root) clients use to reach the admin socket as nobody."""

    path: Path
    proc: asyncio.subprocess.Process


async def start_relay(admin: Path, where: Path, groups: list[int]) -> Relay:
    py = require_root_and_nobody_python()
    where.mkdir()
    os.chown(where, NOBODY, NOBODY)
    listen = where / "relay.sock"
    proc = await asyncio.create_subprocess_exec(
        py,
        str(CLIENT),
        "relay",
        str(admin),
        str(listen),
        preexec_fn=as_user(NOBODY, groups),
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line.strip() == b"ready", line
    return Relay(listen, proc)


async def stop_relay(relay: Relay) -> None:
    relay.proc.kill()
    await relay.proc.wait()


def meta(role: str, node: str, *, host: str = "", pci: str = "", age: float = 0.0) -> MemberMeta:
    return MemberMeta(role=role, node=node, version="0.1.0", started=time.time() - age, host=host, pci=pci)


async def start_agent(name: str, member_meta: MemberMeta, bind: str = "127.0.0.1:0") -> GossipAgent:
    agent = GossipAgent(name, member_meta, Keyring([KEY]), config=GossipConfig.local(), bind=bind)
    await agent.start()
    return agent


@dataclass
class Pair:
    """A host dpfd's member and its DPU's, joined."""

    host: GossipAgent
    dpu: GossipAgent


def all_alive(n: int) -> Callable[[list[MemberInfo]], bool]:
    return lambda members: sum(m.state == "alive" for m in members) == n
