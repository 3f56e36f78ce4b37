"""The emulated BlueField's "DPU OS": what boots after DMS activates an install and reboots.

Booting a new install (a new activation) recreates the DPU's root directory and runs the installed bf.cfg's
file-writing step with bash against it, as the BFB installer does against the new root file system. The DPU
then starts a real dpfd process: `python -m dpfd.daemon --config <root>/etc/dpf/dpfd.yaml`, with stateDir and
runtimeDir moved into the root, gossip (when bf.cfg turned it on) bound to its own port on loopback with its key
file in the root, and a `kubeadm` shim first on PATH that runs the emulated kubeadm. A plain reboot keeps the root
and starts dpfd again. Shutdown (the next reboot, or the DMS stopping) stops dpfd.

What happened is kept in `<state_dir>/dpu-os.json` so `dpf-sim status` can tell whether the DPU's dpfd runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dpfd.agent.statefile import write_atomic
from dpfd.config import ConfigError, parse_config
from dpfd.dpu.joiner import DpuRole
from dpfd.sim.ports import free_port
from dpfd.sim.processes import runs

log = logging.getLogger("dpfd.sim.bluefield.dpu_os")

ROOT_DIR = "root"
RECORD_FILE = "dpu-os.json"
LOG_FILE = "dpu-os.log"
BIN_DIR = "bin"
BF_CFG_COPY = "installed-bf.cfg"
DPFD_CONFIG = "etc/dpf/dpfd.yaml"
DPFD_STATE = "var/lib/dpfd"
DPFD_RUNTIME = "run/dpfd"
MODIFY_OS_TIMEOUT = 60.0

# bfb_modify_os() writes to /mnt, where the BFB installer mounts the new root. The emulator has no such mount,
# so it calls what dpf's bfb_modify_os calls, dpf_write_target_os, with the DPU's root directory instead.
_MODIFY_OS_SCRIPT = """\
set -e
. "$1"
if ! declare -F bfb_modify_os >/dev/null; then
    echo "bf.cfg defines no bfb_modify_os()" >&2
    exit 3
fi
if ! declare -F dpf_write_target_os >/dev/null; then
    echo "bf.cfg defines no dpf_write_target_os(): not a bf.cfg rendered by dpf" >&2
    exit 3
fi
dpf_write_target_os "$2"
"""


def default_kubeadm() -> list[str]:
    """argv of the emulated kubeadm the shim runs."""
    return [sys.executable, "-m", "dpfd.sim.kubeadm"]


@dataclass(frozen=True)
class DpuOsOptions:
    """How the emulated DPU OS runs its dpfd.

    kubeadm: argv the `kubeadm` shim runs (its arguments follow); default the emulated kubeadm.
    python: interpreter for `-m dpfd.daemon`.
    env: extra environment for dpfd (e.g. a faster log level is in the config, not here).
    stop_timeout: seconds between SIGTERM and SIGKILL when the DPU shuts down.
    join_only: run only the DPU dpfd's cluster join (dpfd.dpu's Joiner, in this process) instead of a dpfd
      process: for benchmarks with many DPUs, where a Python process per DPU would measure the machine's CPU.
    """

    kubeadm: Sequence[str] = field(default_factory=default_kubeadm)
    python: str = sys.executable
    env: Mapping[str, str] = field(default_factory=dict)
    stop_timeout: float = 10.0
    join_only: bool = False
    dataplane: Mapping[str, Any] | None = None  # merged into dpfd.yaml's `dataplane:` (the BlueField's own OVS)
    # Where the DPU's dpfd binds gossip when bf.cfg turned it on (many DPUs share the machine's loopback). None: a
    # free port on 127.0.0.1, picked once and kept, so the DPU comes back after a reboot at the address the others
    # know it by (gossip refuses a known name from another address).
    gossip_bind: str | None = None


@dataclass(frozen=True)
class BootImage:
    """What DMS booted: the running BFB and bf.cfg, and which activation put them there."""

    bfb: str
    bf_cfg_version: str
    bf_cfg: bytes | None
    activation: int


class DpuOs:
    """One emulated DPU's OS, living in `<state_dir>` (root file system under `<state_dir>/root`)."""

    def __init__(self, state_dir: Path, name: str, options: DpuOsOptions | None = None) -> None:
        self.dir = state_dir
        self.name = name
        self.options = options or DpuOsOptions()
        self.root = state_dir / ROOT_DIR
        self.record_path = state_dir / RECORD_FILE
        self.log_path = state_dir / LOG_FILE
        self._proc: asyncio.subprocess.Process | None = None
        self._role: DpuRole | None = None  # join_only: the join, run here
        self._record: dict[str, Any] = _read_record(self.record_path)
        self.boots = int(self._record.get("boots", 0))
        self.error: str | None = None

    # -- state ------------------------------------------------------------------------------------------------

    @property
    def dpfd_pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def dpfd_running(self) -> bool:
        return self.dpfd_pid is not None

    def stats(self) -> dict[str, Any]:
        return {
            "boots": self.boots,
            "dpfd_running": self.dpfd_running,
            "dpfd_pid": self.dpfd_pid,
            "installed_activation": self._record.get("installedActivation"),
            "error": self.error,
            "root": str(self.root),
        }

    def _save(self, **changes: Any) -> None:
        self._record.update(changes, boots=self.boots, error=self.error)
        self.dir.mkdir(parents=True, exist_ok=True)
        write_atomic(
            self.record_path, (json.dumps(self._record, indent=2, sort_keys=True) + "\n").encode(), durable=False
        )

    # -- boot and shutdown ------------------------------------------------------------------------------------

    async def boot(self, image: BootImage) -> None:
        """Boot: install the image into the root if it is a new activation, then start dpfd (if configured).

        Failures are kept in `error` (and logged): a DPU with a broken bf.cfg still boots, without dpfd.
        """
        await self.shutdown()  # never two dpfds for one DPU, also after our own process was killed
        self.boots += 1
        self.error = None
        try:
            if self._record.get("installedActivation") != image.activation or not self.root.is_dir():
                await self._install(image)
            if self.options.join_only:
                self._start_join()
            else:
                await self._start_dpfd()
        except DpuOsError as e:
            self.error = str(e)
            log.warning("DPU %s: boot without dpfd: %s", self.name, e)
        self._save()

    async def _install(self, image: BootImage) -> None:
        """A fresh root file system, with bf.cfg's files written into it."""
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self._save(installedActivation=image.activation, bfb=image.bfb, bfCfg=image.bf_cfg_version)
        if image.bf_cfg is None:
            raise DpuOsError(f"no bf.cfg was activated with {image.bfb!r}: the DPU has no dpfd configuration")
        cfg = self.dir / BF_CFG_COPY
        write_atomic(cfg, image.bf_cfg, durable=False)
        bash = shutil.which("bash") or "/bin/bash"
        proc = await asyncio.create_subprocess_exec(
            bash, "-c", _MODIFY_OS_SCRIPT, "bf.cfg", str(cfg), str(self.root),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            cwd=self.dir, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
        )  # fmt: skip
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), MODIFY_OS_TIMEOUT)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise DpuOsError(
                f"bf.cfg {image.bf_cfg_version}: writing the root took over {MODIFY_OS_TIMEOUT:g}s"
            ) from None
        if proc.returncode != 0:
            text = out.decode(errors="replace").strip()[-1000:]
            raise DpuOsError(f"bf.cfg {image.bf_cfg_version}: bash exited with {proc.returncode}: {text}")

    async def _start_dpfd(self) -> None:
        config_path = self.root / DPFD_CONFIG
        if not config_path.is_file():
            raise DpuOsError(f"{config_path} does not exist: bf.cfg wrote no dpfd configuration")
        config_path.write_bytes(self._dpu_config(config_path))
        config_path.chmod(0o600)
        shim = self._write_kubeadm_shim()
        argv = [self.options.python, "-m", "dpfd.daemon", "--config", str(config_path)]
        env = _child_env(self.options.env, shim.parent)
        with self.log_path.open("ab") as out:
            out.write(f"--- boot {self.boots} of DPU {self.name}: {' '.join(argv)}\n".encode())
            out.flush()
            self._proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                cwd=self.root, env=env, start_new_session=True,
            )  # fmt: skip
        self._save(dpfdPid=self._proc.pid, dpfdArgv=argv, startedAt=time.time())
        log.info("DPU %s: dpfd started (pid %d)", self.name, self._proc.pid)

    def _start_join(self) -> None:
        path = self.root / DPFD_CONFIG
        if not path.is_file():
            raise DpuOsError(f"{path} does not exist: bf.cfg wrote no dpfd configuration")
        config = parse_config(self._dpu_config(path).decode(), str(path))
        if config.join is None:
            return
        self._write_kubeadm_shim()
        self._role = DpuRole(config.join, config.node, config.state_dir).start()

    def _dpu_config(self, path: Path) -> bytes:
        """The config bf.cfg wrote, with its paths moved into the root and kubeadm pointed at the shim."""
        text = path.read_text()
        try:
            parse_config(text, str(path))
        except ConfigError as e:
            raise DpuOsError(f"dpfd would not start: {e}") from None
        data = yaml.safe_load(text)
        data["stateDir"] = str(self.root / DPFD_STATE)
        data["runtimeDir"] = str(self.root / DPFD_RUNTIME)
        if isinstance(data.get("join"), dict):
            data["join"]["kubeadm"] = str(self.dir / BIN_DIR / "kubeadm")
        if self.options.dataplane is not None:
            data["dataplane"] = {**(data.get("dataplane") or {}), **self.options.dataplane}
        gossip = data.get("gossip")
        if isinstance(gossip, dict) and gossip.get("enabled"):
            key_file = gossip.get("keyFile")
            if isinstance(key_file, str) and key_file.startswith("/"):
                gossip["keyFile"] = str(self.root / key_file.lstrip("/"))
            gossip["bind"] = self._gossip_bind()
            gossip.pop("advertise", None)
        return yaml.safe_dump(data, sort_keys=False).encode()

    def _gossip_bind(self) -> str:
        if self.options.gossip_bind is not None:
            return self.options.gossip_bind
        bind = self._record.get("gossipBind")
        if not isinstance(bind, str):
            bind = f"127.0.0.1:{free_port()}"
            self._save(gossipBind=bind)
        return bind

    def _write_kubeadm_shim(self) -> Path:
        shim = self.dir / BIN_DIR / "kubeadm"
        shim.parent.mkdir(parents=True, exist_ok=True)
        words = " ".join(_sh_quote(w) for w in self.options.kubeadm)
        shim.write_text(f"#!/bin/sh\n# The DPU OS's kubeadm: dpf-sim's emulated one.\nexec {words} \"$@\"\n")
        shim.chmod(0o755)
        return shim

    async def shutdown(self) -> None:
        """Stop the DPU's dpfd (SIGTERM, then SIGKILL after stop_timeout); also one left by a killed emulator."""
        role, self._role = self._role, None
        if role is not None:
            await role.stop()
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.returncode is None:
                _signal_group(proc.pid, signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), self.options.stop_timeout)
                except TimeoutError:
                    _signal_group(proc.pid, signal.SIGKILL)
                    await proc.wait()
                log.info("DPU %s: dpfd stopped (exit %s)", self.name, proc.returncode)
        else:
            await self._stop_leftover()
        if self._record.get("dpfdPid") is not None:
            self._save(dpfdPid=None)

    async def _stop_leftover(self) -> None:
        pid, argv = self._record.get("dpfdPid"), self._record.get("dpfdArgv")
        if not isinstance(pid, int) or not isinstance(argv, list):
            return
        try:
            pidfd = os.pidfd_open(pid)  # opened before checking, so a reused PID cannot be signalled by mistake
        except OSError:
            return
        try:
            if not runs(pid, argv):
                return
            _signal_group(pid, signal.SIGTERM)
            if not await _exited(pidfd, self.options.stop_timeout):
                _signal_group(pid, signal.SIGKILL)
                await _exited(pidfd, 5.0)
            log.info("DPU %s: stopped the dpfd (pid %d) a previous emulator left running", self.name, pid)
        finally:
            os.close(pidfd)


async def _exited(pidfd: int, within: float) -> bool:
    """Wait for the process behind `pidfd` (not our child) to end; False after `within` seconds."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not done.done():
            done.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await asyncio.wait_for(done, within)
        return True
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(pidfd)


class DpuOsError(Exception):
    """The DPU booted, but not into a running dpfd; the message says why."""


def read_status(state_dir: Path) -> dict[str, Any] | None:
    """What `dpf-sim status` shows of a DPU OS: None if it never booted; else boots, error, whether dpfd runs."""
    record = _read_record(state_dir / RECORD_FILE)
    if not record:
        return None
    pid, argv = record.get("dpfdPid"), record.get("dpfdArgv")
    running = isinstance(pid, int) and isinstance(argv, list) and runs(pid, argv)
    return {
        "boots": record.get("boots", 0),
        "dpfd_running": running,
        "dpfd_pid": pid if running else None,
        "error": record.get("error"),
    }


def _read_record(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _child_env(extra: Mapping[str, str], bin_dir: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "DPFD_CONFIG")
    }
    env.update(extra)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
    # dpfd importable by `python -m` also when this process found it through its working directory only.
    source = str(Path(__file__).resolve().parents[3])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source, env.get("PYTHONPATH")) if p)
    return env


def _sh_quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


def _signal_group(pid: int, sig: int) -> None:
    # dpfd runs in its own session: the signal reaches what it started too (a running kubeadm).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
