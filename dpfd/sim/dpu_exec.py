"""`dpf-sim exec NAME --state-dir DIR -- CMD`: run CMD in an emulated host's or DPU's environment.

Every target gets its dpfd's environment: DPFD_CONFIG (its config file), DPF_ADMIN_SOCKET (its admin socket) and
DPF_ETCD_ENDPOINTS, so `dpf-sim exec worker-1 --state-dir DIR -- dpfctl status` asks that host's dpfd, and the same
with a DPU's name asks the dpfd running on that emulated DPU.

A DPU with a data plane (`up --dataplane ovs`) runs CMD in the network namespace its Open vSwitch runs in, with
OVS_RUNDIR and friends pointing at that OVS, so `ovs-vsctl show`, `ovs-ofctl dump-flows br-sfc` or `ip link` see what
the DPU's dpfd made. `--in wire` runs CMD where the DPU's uplinks are cabled to (wire0, wire1 face p0, p1), `--in host`
where its host's PFs are (they face pf0hpf, pf1hpf); see dpfd/sim/port_ends.py. Hosts, and DPUs without a data
plane, run CMD in dpf-sim's own namespace (where etcd and the admin sockets are reachable).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dpfd.config import ConfigError, load_config
from dpfd.sim.bluefield.dpu_os import DPFD_CONFIG, DPFD_RUNTIME, ROOT_DIR
from dpfd.sim.rack import OVS_RECORD
from dpfd.sim.rack_plan import dpu_name

HOST_CONFIG = "dpfd.yaml"  # in a host's home, <state>/hosts/<node>/ (dpfd.sim.fleet)
ADMIN_SOCKET = "admin.sock"  # in a dpfd's runtimeDir (dpfd.admin.wiring)


class ExecError(Exception):
    pass


@dataclass(frozen=True)
class Target:
    """One emulated machine that runs a dpfd: where its config and admin socket are, and its OVS (DPUs with a data
    plane)."""

    name: str
    role: str  # host or dpu
    config: Path  # may not exist yet: a DPU that has not booted a dpfd
    runtime_dir: Path
    ovs: dict[str, Any] | None = None


def dpu_environments(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Every emulated DPU with a data plane under `state_dir`, by name."""
    found: dict[str, dict[str, Any]] = {}
    for path in state_dir.rglob(OVS_RECORD):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("name"):
            found[str(record["name"])] = record
    return found


def targets(state_dir: Path) -> dict[str, Target]:
    """Every emulated host and DPU under `state_dir`, by name."""
    found: dict[str, Target] = {}
    ovs = dpu_environments(state_dir)
    hosts = state_dir / "hosts"
    for home in sorted(hosts.iterdir()) if hosts.is_dir() else []:
        config = home / HOST_CONFIG
        if config.is_file():
            found[home.name] = Target(home.name, "host", config, _runtime_dir(config, home / "run"))
        for bluefield in sorted((home / "bluefields").glob("*")):
            if not bluefield.is_dir():
                continue
            name = dpu_name(home.name, bluefield.name)
            root = bluefield / ROOT_DIR
            found[name] = Target(name, "dpu", root / DPFD_CONFIG, root / DPFD_RUNTIME, ovs.get(name))
    for name, record in ovs.items():  # a data plane whose BlueField is not where dpf-sim up puts it
        found.setdefault(name, Target(name, "dpu", Path("/nonexistent"), Path("/nonexistent"), record))
    return found


def _runtime_dir(config: Path, default: Path) -> Path:
    try:
        return load_config(config).runtime_dir
    except ConfigError:
        return default


def daemon_env(target: Target) -> dict[str, str]:
    """The variables that point dpfctl (and the like) at the target's dpfd."""
    env = {"DPF_ADMIN_SOCKET": str(target.runtime_dir / ADMIN_SOCKET)}
    if target.config.is_file():
        env["DPFD_CONFIG"] = str(target.config)
        with contextlib.suppress(ConfigError):  # dpfctl says what is wrong with the config when it needs etcd
            env["DPF_ETCD_ENDPOINTS"] = ",".join(load_config(target.config).etcd.endpoints)
    return env


SIDES = {"dpu": "netns", "wire": "wireNetns", "host": "hostNetns"}  # --in: the key in ovs.json


def exec_argv(state_dir: Path, name: str, command: list[str], side: str = "dpu") -> tuple[list[str], dict[str, str]]:
    """argv and environment that run `command` in `name`'s environment (`side`, for DPUs: dpu, wire or host)."""
    if not command:
        raise ExecError("no command given: dpf-sim exec NAME --state-dir DIR -- CMD [ARGS...]")
    key = SIDES.get(side)
    if key is None:
        raise ExecError(f"--in {side}: expected one of {', '.join(SIDES)}")
    found = targets(state_dir)
    target = found.get(name)
    if target is None:
        known = ", ".join(sorted(found)) or "none (is dpf-sim up running with this state dir?)"
        raise ExecError(f"no emulated host or DPU {name!r} under {state_dir}; known: {known}")
    env = {**os.environ, **daemon_env(target)}
    if target.ovs is None:
        if side != "dpu":
            has = "is a host" if target.role == "host" else "has no data plane (dpf-sim up --dataplane ovs)"
            raise ExecError(f"--in {side}: {name} {has}")
        return list(command), env
    netns = target.ovs.get(key)
    if not netns:
        raise ExecError(f"emulated DPU {name!r} has no {side} namespace (a rack from before port ends?)")
    rundir = str(target.ovs["rundir"])
    env.update(OVS_RUNDIR=rundir, OVS_DBDIR=rundir, OVS_LOGDIR=rundir)
    return ["ip", "netns", "exec", str(netns), *command], env


def run(state_dir: Path, name: str, command: list[str], side: str = "dpu") -> int:
    argv, env = exec_argv(state_dir, name, command, side)
    os.execvpe(argv[0], argv, env)  # replaces this process: CMD's exit status is ours
