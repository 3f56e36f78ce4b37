"""What the emulated DMS remembers across restarts: installed images, the running OS, mode and counters.

Kept in `<state_dir>/dms-state.json` (written atomically on every change) so `dpf-sim status` can read it while the
server runs or after it stopped; bf.cfg contents go to `<state_dir>/images/<version>` (a BFB is kept as metadata
only: size and sha256).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "dms-state.json"
IMAGES_DIR = "images"


@dataclass
class InstalledImage:
    """One OS.Install that DMS validated."""

    size: int
    sha256: str
    kind: str  # "bfb" or "bf.cfg"


@dataclass
class DmsState:
    """The emulated DMS's persistent state."""

    name: str = ""
    installs: int = 0
    activations: int = 0
    reboots: int = 0
    mode: str = "DPU"
    running_version: str = ""
    running_bf_cfg: str = ""
    next_boot: list[str] = field(default_factory=list)  # activated with no_reboot, applied at the next reboot
    installed: dict[str, InstalledImage] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DmsState:
        installed = {k: InstalledImage(**v) for k, v in data.get("installed", {}).items()}
        return cls(**{**data, "installed": installed})


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class StateStore:
    """Loads and saves `DmsState` under a directory, or keeps it in memory only when there is none."""

    def __init__(self, state_dir: Path | None) -> None:
        self.dir = state_dir
        self.state = load_state(state_dir) if state_dir else DmsState()
        if state_dir:
            (state_dir / IMAGES_DIR).mkdir(parents=True, exist_ok=True)

    def save(self) -> None:
        if self.dir:
            _atomic_write(self.dir / STATE_FILE, json.dumps(self.state.to_json(), indent=2, sort_keys=True).encode())

    def save_image(self, version: str, data: bytes) -> None:
        if self.dir:
            _atomic_write(self.dir / IMAGES_DIR / version, data)

    def image(self, version: str) -> bytes | None:
        """A stored bf.cfg's content (None without a state dir or for a BFB)."""
        if not self.dir:
            return None
        path = self.dir / IMAGES_DIR / version
        return path.read_bytes() if path.is_file() else None


def load_state(state_dir: Path) -> DmsState:
    """The state saved in `state_dir` (a fresh one when there is none yet)."""
    path = state_dir / STATE_FILE
    if not path.exists():
        return DmsState()
    try:
        return DmsState.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as e:
        raise ValueError(f"emulated DMS state {path} is unreadable: {e}") from None
