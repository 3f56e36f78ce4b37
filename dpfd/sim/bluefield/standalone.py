"""`dpf-sim bluefield`: one emulated BlueField on its own (DMS server plus its DPU OS), until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from dpfd.sim.bluefield.dms_server import EmulatedDms, add_arguments, serve_until_signalled, server_config
from dpfd.sim.bluefield.dpu_os import DpuOsOptions


def add_bluefield_arguments(p: argparse.ArgumentParser) -> None:
    add_arguments(p)
    p.add_argument(
        "--no-dpu-os", action="store_true", help="only flash: do not boot the DPU OS (no dpfd) after a reboot"
    )


async def _run(config: dict[str, Any]) -> None:
    dms = await EmulatedDms(**config).start()
    os_state = "off" if dms.dpu_os is None else f"on (root {dms.dpu_os.root})"
    banner = f"emulated BlueField {dms.name}: DMS on {dms.address}, state in {dms.state_dir}, DPU OS {os_state}"
    await serve_until_signalled(dms, banner)


def run(args: argparse.Namespace) -> int:
    try:
        config = server_config(args)
        if config["state_dir"] is None:
            config["state_dir"] = Path(tempfile.mkdtemp(prefix=f"dpf-bluefield-{args.name}-"))
        config["state_dir"].mkdir(parents=True, exist_ok=True)
        if not args.no_dpu_os:
            config["dpu_os"] = DpuOsOptions()
        import uvloop

        uvloop.run(_run(config))
    except (ValueError, OSError) as e:
        print(f"dpf-sim bluefield: {e}", file=sys.stderr)
        return 2
    return 0
