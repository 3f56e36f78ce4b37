"""What a DPU's provisioning has done, kept on disk so a restart (even `kill -9`) resumes where it stopped.

Every step that touches the DPU is recorded twice: `*_started` before the call and `*_done` after it, each
written durably (fsync) before moving on. A restart that finds a step started but not done asks the DPU
what happened (DMS answers `Validated` for an image it already holds, and reports the running version)
instead of doing it again, so one generation is never flashed twice.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dpfd.agent.statefile import read_file, remove_durably, write_atomic
from dpfd.api.intents import ObjectRef
from dpfd.host.provisioning.phases import INITIALIZING


class StepError(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phase: str
    reason: str
    message: str
    at: float  # wall clock, seconds


class PhaseEntry(BaseModel):
    """One phase entered, and when (wall clock; 0 for entries written before dpfd kept times)."""

    model_config = ConfigDict(extra="forbid")

    phase: str
    at: float = 0.0


HISTORY_LENGTH = 32  # phases kept per DPU: a full flash is 9, so the last few attempts


class Progress(BaseModel):
    """The provisioning record of one DPU incarnation (uid) and one install identity (BFB + flavor)."""

    model_config = ConfigDict(extra="forbid")

    uid: str
    install_id: str = ""  # digest of what gets flashed: BFB file, flavor spec, bf.cfg inputs
    phase: str = INITIALIZING
    fencing_token: int = 0
    bfb_digest: str = ""
    mode_set: bool = False
    bfb_install_started: bool = False
    bfb_installed: bool = False
    cfg_installed: bool = False
    activate_started: bool = False
    activated: bool = False
    activated_at: float = 0.0  # wall clock
    # When the DPU's dpfd seen alive over gossip as Activate was sent had started (0: none): not the one to wait for.
    dpu_dpfd_started_before: float = 0.0
    dpu_rebooted: bool = False
    dpu_rebooted_by: str = ""  # what told the host the DPU was back: "gossip" (its dpfd joined) or "dms" (RebootStatus)
    host_reboot_method: str = ""
    host_reboot_requested_at: float = 0.0
    host_rebooted: bool = False
    host_network_ready: bool = False
    cluster_ready: bool = False
    attempts: int = 0  # failed attempts of `failed_phase` since it last got through
    failed_phase: str = ""  # the phase whose failures `attempts` counts
    error: StepError | None = None
    next_retry_at: float = 0.0
    retry_nonce: str = ""  # the operator's last retry request that was honoured
    reflash_nonce: str = ""
    operator_retry: str = ""  # the last local retry request (dpfctl dpu retry) that was honoured
    operator_reflash: str = ""  # the last local reflash request that was honoured
    history: list[PhaseEntry] = Field(default_factory=list)  # phases entered, oldest first (dpfctl describe)

    @field_validator("history", mode="before")
    @classmethod
    def _timeless_history(cls, v: Any) -> Any:
        # Progress written before phases had times kept their names only.
        return [{"phase": e} if isinstance(e, str) else e for e in v] if isinstance(v, list) else v

    def enter(self, phase: str, at: float | None = None) -> bool:
        if self.phase == phase:
            return False
        self.phase = phase
        entry = PhaseEntry(phase=phase, at=time.time() if at is None else at)
        self.history = [*self.history[-(HISTORY_LENGTH - 1) :], entry]
        return True

    def reset_install(self) -> None:
        """Forget everything from the flash on (a reflash, or a new BFB or flavor)."""
        for name in ("mode_set", "bfb_install_started", "bfb_installed", "cfg_installed", "activate_started",
                     "activated", "dpu_rebooted", "host_rebooted", "host_network_ready", "cluster_ready"):  # fmt: skip
            setattr(self, name, False)
        self.activated_at = self.host_reboot_requested_at = self.dpu_dpfd_started_before = 0.0
        self.host_reboot_method = self.dpu_rebooted_by = ""


def install_identity(bfb_file: str, bfb_url: str, flavor: dict[str, Any], extra: dict[str, Any]) -> str:
    """A digest of what gets flashed: a change here (new BFB, new flavor) means a new flash."""
    doc = {"bfb": bfb_file, "url": bfb_url, "flavor": flavor, "extra": extra}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


class ProgressStore:
    """One durable JSON file per DPU: `<stateDir>/provisioning/<namespace>/<name>.json`."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "provisioning"

    def path(self, ref: ObjectRef) -> Path:
        return self.root / ref.namespace / f"{ref.name}.json"

    def load(self, ref: ObjectRef) -> Progress | None:
        try:
            return Progress.model_validate_json(read_file(self.path(ref)))
        except FileNotFoundError:
            return None

    def save(self, ref: ObjectRef, progress: Progress) -> None:
        write_atomic(self.path(ref), progress.model_dump_json(indent=1).encode(), durable=True)

    def remove(self, ref: ObjectRef) -> bool:
        return remove_durably(self.path(ref))

    def refs(self, kind: str) -> list[ObjectRef]:
        if not self.root.is_dir():
            return []
        return [
            ObjectRef(kind=kind, namespace=f.parent.name, name=f.name.removesuffix(".json"))
            for f in sorted(self.root.glob("*/*.json"))
        ]
