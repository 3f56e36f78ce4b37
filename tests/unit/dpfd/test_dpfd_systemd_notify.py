"""sd_notify against a real AF_UNIX datagram socket, by path and in the abstract namespace."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpfd.systemd_notify import SystemdNotifier


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = tmp_path / "notify.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(5)
    yield str(path), s
    s.close()


def test_ready_status_stopping(notify_socket: tuple[str, socket.socket]) -> None:
    addr, sock = notify_socket
    n = SystemdNotifier({"NOTIFY_SOCKET": addr})
    assert n.enabled
    assert n.ready("watching 3 intents")
    assert sock.recv(4096) == b"READY=1\nSTATUS=watching 3 intents"
    assert n.status("reconnecting")
    assert sock.recv(4096) == b"STATUS=reconnecting"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_socket() -> None:
    name = f"dpfd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(5)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert s.recv(4096) == b"READY=1"


def test_noop_without_notify_socket() -> None:
    n = SystemdNotifier({})
    assert not n.enabled
    assert not n.ready()
    assert n.watchdog_interval is None


def test_send_failure_is_not_fatal(tmp_path: Path) -> None:
    assert not SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}).ready()


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"WATCHDOG_USEC": "2000000"}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}, 1.0),
        ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "x"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(env: dict[str, str], interval: float | None) -> None:
    assert SystemdNotifier({"NOTIFY_SOCKET": "/x", **env}).watchdog_interval == interval


async def test_watchdog_cadence(notify_socket: tuple[str, socket.socket]) -> None:
    addr, sock = notify_socket
    sock.setblocking(False)
    n = SystemdNotifier({"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "200000"})  # ping every 0.1 s
    task = asyncio.create_task(n.run_watchdog())
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    try:
        while len(stamps) < 5:
            msg = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2.0)
            assert msg == b"WATCHDOG=1"
            stamps.append(time.monotonic())
    finally:
        task.cancel()
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # Half of WATCHDOG_USEC, allowing for scheduling on a busy 2-core machine.
    assert all(0.07 < g < 0.3 for g in gaps), gaps


def test_full_receiver_queue_does_not_block(notify_socket: tuple[str, socket.socket]) -> None:
    addr, _ = notify_socket  # nobody reads: the socket's queue fills up
    n = SystemdNotifier({"NOTIFY_SOCKET": addr})
    t0 = time.monotonic()
    results = [n.watchdog() for _ in range(2000)]
    assert time.monotonic() - t0 < 2.0
    assert results[0] and not all(results)  # the first went through, later ones were dropped
