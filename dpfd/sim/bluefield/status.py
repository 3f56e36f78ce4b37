"""`dpf-sim status`: every emulated DPU under a state dir, from the files its emulator keeps (it may have stopped)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dpfd.sim.bluefield.dms_state import STATE_FILE, load_state
from dpfd.sim.bluefield.dpu_os import ROOT_DIR, read_status


def collect(state_dir: Path) -> list[dict[str, Any]]:
    """One row per `dms-state.json` found under `state_dir`, sorted by name."""
    rows: list[dict[str, Any]] = []
    for path in sorted(state_dir.rglob(STATE_FILE)):
        dpu_dir = path.parent
        if ROOT_DIR in dpu_dir.relative_to(state_dir).parts:
            continue  # a file inside an emulated DPU's own root file system
        try:
            state = load_state(dpu_dir)
        except ValueError as e:
            rows.append({"name": _fallback_name(dpu_dir, state_dir), "dir": str(dpu_dir), "error": str(e)})
            continue
        os_status = read_status(dpu_dir)
        rows.append(
            {
                "name": state.name or _fallback_name(dpu_dir, state_dir),
                "dir": str(dpu_dir),
                "installs": state.installs,
                "activations": state.activations,
                "reboots": state.reboots,
                "mode": state.mode,
                "running_version": state.running_version,
                "running_bf_cfg": state.running_bf_cfg,
                "dpu_os": os_status,
                "dpfd_running": bool(os_status and os_status["dpfd_running"]),
            }
        )
    return sorted(rows, key=lambda r: str(r["name"]))


def _fallback_name(dpu_dir: Path, state_dir: Path) -> str:
    return str(dpu_dir.relative_to(state_dir)) if dpu_dir != state_dir else dpu_dir.name


def render(rows: list[dict[str, Any]], output: str) -> str:
    if output == "json":
        return json.dumps(rows, indent=2, sort_keys=True)
    header = ("NAME", "INSTALLS", "ACTIVATIONS", "REBOOTS", "MODE", "RUNNING", "DPFD")
    table = [header]
    for r in rows:
        if "error" in r:
            table.append((r["name"], "-", "-", "-", "-", f"error: {r['error']}", "-"))
            continue
        dpfd = "running" if r["dpfd_running"] else ("stopped" if r["dpu_os"] else "-")
        running = r["running_version"] or "-"
        table.append(
            (r["name"], str(r["installs"]), str(r["activations"]), str(r["reboots"]), r["mode"], running, dpfd)
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    return "\n".join(
        "   ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "   " + row[-1] for row in table
    )
