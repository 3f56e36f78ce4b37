"""`dpf-sim exec NAME --state-dir DIR -- CMD`: run CMD in an emulated DPU's environment.

That is the network namespace its Open vSwitch runs in, with OVS_RUNDIR and friends pointing at that OVS, so
`ovs-vsctl show`, `ovs-ofctl dump-flows br-sfc` or `ip link` see what the DPU's dpfd made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dpfd.sim.rack import OVS_RECORD


class ExecError(Exception):
    pass


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


def exec_argv(state_dir: Path, name: str, command: list[str]) -> tuple[list[str], dict[str, str]]:
    """argv and environment that run `command` in DPU `name`'s environment."""
    if not command:
        raise ExecError("no command given: dpf-sim exec NAME --state-dir DIR -- CMD [ARGS...]")
    envs = dpu_environments(state_dir)
    record = envs.get(name)
    if record is None:
        known = ", ".join(sorted(envs)) or "none (start dpf-sim up with --dataplane ovs)"
        raise ExecError(f"no emulated DPU {name!r} with a data plane under {state_dir}; known: {known}")
    rundir = str(record["rundir"])
    env = {**os.environ, "OVS_RUNDIR": rundir, "OVS_DBDIR": rundir, "OVS_LOGDIR": rundir}
    return ["ip", "netns", "exec", str(record["netns"]), *command], env


def run(state_dir: Path, name: str, command: list[str]) -> int:
    argv, env = exec_argv(state_dir, name, command)
    os.execvpe(argv[0], argv, env)  # replaces this process: CMD's exit status is ours
