"""`dpf-sim exec NAME --state-dir DIR -- CMD`: run CMD in an emulated DPU's environment.

That is the network namespace its Open vSwitch runs in, with OVS_RUNDIR and friends pointing at that OVS, so
`ovs-vsctl show`, `ovs-ofctl dump-flows br-sfc` or `ip link` see what the DPU's dpfd made. `--in wire` runs CMD
where the DPU's uplinks are cabled to (wire0, wire1 face p0, p1), `--in host` where its host's PFs are (they face
pf0hpf, pf1hpf); see dpfd/sim/port_ends.py.
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


SIDES = {"dpu": "netns", "wire": "wireNetns", "host": "hostNetns"}  # --in: the key in ovs.json


def exec_argv(state_dir: Path, name: str, command: list[str], side: str = "dpu") -> tuple[list[str], dict[str, str]]:
    """argv and environment that run `command` in DPU `name`'s environment (`side`: dpu, wire or host)."""
    if not command:
        raise ExecError("no command given: dpf-sim exec NAME --state-dir DIR -- CMD [ARGS...]")
    envs = dpu_environments(state_dir)
    record = envs.get(name)
    if record is None:
        known = ", ".join(sorted(envs)) or "none (start dpf-sim up with --dataplane ovs)"
        raise ExecError(f"no emulated DPU {name!r} with a data plane under {state_dir}; known: {known}")
    key = SIDES.get(side)
    if key is None:
        raise ExecError(f"--in {side}: expected one of {', '.join(SIDES)}")
    netns = record.get(key)
    if not netns:
        raise ExecError(f"emulated DPU {name!r} has no {side} namespace (a rack from before port ends?)")
    rundir = str(record["rundir"])
    env = {**os.environ, "OVS_RUNDIR": rundir, "OVS_DBDIR": rundir, "OVS_LOGDIR": rundir}
    return ["ip", "netns", "exec", str(netns), *command], env


def run(state_dir: Path, name: str, command: list[str], side: str = "dpu") -> int:
    argv, env = exec_argv(state_dir, name, command, side)
    os.execvpe(argv[0], argv, env)  # replaces this process: CMD's exit status is ours
