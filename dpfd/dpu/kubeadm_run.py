"""One `kubeadm join --config FILE` attempt, with a timeout and kubeadm's output kept for the error."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from pathlib import Path

OUTPUT_TAIL = 2000  # characters of kubeadm's output an error carries


class JoinError(Exception):
    """A join attempt failed; the message names the command and why, with the end of kubeadm's output."""


def _tail(output: bytes) -> str:
    text = output.decode(errors="replace").strip()
    if len(text) > OUTPUT_TAIL:
        text = "..." + text[-OUTPUT_TAIL:]
    return text or "(no output)"


async def run_kubeadm_join(
    kubeadm: str, config: Path, time_limit: float, *, env: Mapping[str, str] | None = None
) -> str:
    """Run `<kubeadm> join --config <config>`; kubeadm's output on success, JoinError otherwise."""
    argv = [kubeadm, "join", "--config", str(config)]
    shown = " ".join(argv)
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # its own process group, so a timeout stops whatever kubeadm started
        )
    except FileNotFoundError:
        path = (env or os.environ).get("PATH", "")
        raise JoinError(f"{shown}: {kubeadm!r} not found (join.kubeadm; PATH={path})") from None
    except PermissionError as e:
        raise JoinError(f"{shown}: cannot execute {kubeadm!r}: {e.strerror}") from None
    assert proc.stdout is not None
    reading = asyncio.ensure_future(proc.stdout.read())
    try:
        await asyncio.wait_for(proc.wait(), time_limit)
    except TimeoutError:
        _kill_group(proc.pid)
        await proc.wait()
        output = await _collect(reading)
        raise JoinError(f"{shown}: did not finish within {time_limit:g}s; output: {_tail(output)}") from None
    except asyncio.CancelledError:
        _kill_group(proc.pid)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 5.0)
        reading.cancel()
        raise
    output = await _collect(reading)
    if proc.returncode != 0:
        raise JoinError(f"{shown}: exited with status {proc.returncode}: {_tail(output)}")
    return output.decode(errors="replace")


async def _collect(reading: asyncio.Future[bytes]) -> bytes:
    # A grandchild that kept the pipe open must not hold us up after kubeadm itself ended.
    try:
        return await asyncio.wait_for(reading, 5.0)
    except TimeoutError:
        return b""


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
