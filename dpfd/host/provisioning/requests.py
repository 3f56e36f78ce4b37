"""Requests an operator makes on the host itself (dpfctl, through the admin API): retry or reflash one DPU, and drain
the host. The local counterpart of the DPU annotations the controller passes on (`ANNOTATION_RETRY`, `..._REFLASH`),
for when the operator is at the host rather than at kubectl.

They are files under `<stateDir>/operator/`, written durably, so they survive a restart of dpfd (even `kill -9`)
and are honoured by whichever dpfd runs next. Each DPU request has an id; the machine records the id it honoured in
the DPU's progress, so a request is honoured once, and only by the process that owns the DPU (the machine saves
that progress only while it holds the DPU's lock, and every step that touches the DPU is fenced by that lock).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from dpfd.agent.statefile import read_file, remove_durably, write_atomic
from dpfd.api.intents import ObjectRef

Action = Literal["retry", "reflash"]


class DpuRequests(BaseModel):
    """The latest request of each action for one DPU ("" when none)."""

    model_config = ConfigDict(extra="forbid")

    retry: str = ""
    retry_at: float = 0.0
    reflash: str = ""
    reflash_at: float = 0.0


class DrainState(BaseModel):
    """The host is drained: no new provisioning work starts until it is undrained."""

    model_config = ConfigDict(extra="forbid")

    since: float
    reason: str = ""


class OperatorRequests:
    """`<stateDir>/operator/dpus/<namespace>/<name>.json` per DPU, and `<stateDir>/operator/drain.json`."""

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "operator"

    def _dpu_path(self, ref: ObjectRef) -> Path:
        return self.root / "dpus" / ref.namespace / f"{ref.name}.json"

    @property
    def drain_path(self) -> Path:
        return self.root / "drain.json"

    def dpu(self, ref: ObjectRef) -> DpuRequests:
        try:
            return DpuRequests.model_validate_json(read_file(self._dpu_path(ref)))
        except (FileNotFoundError, ValidationError):
            return DpuRequests()  # none, or a file no dpfd of this version wrote: nothing to honour

    def request(self, ref: ObjectRef, action: Action, at: float | None = None) -> str:
        """Record a new request; returns its id."""
        current = self.dpu(ref)
        request_id = uuid.uuid4().hex[:16]
        when = time.time() if at is None else at
        updated = current.model_copy(update={action: request_id, f"{action}_at": when})
        write_atomic(self._dpu_path(ref), updated.model_dump_json().encode(), durable=True)
        return request_id

    def forget(self, ref: ObjectRef) -> None:
        """The DPU is gone: so are its requests."""
        remove_durably(self._dpu_path(ref))

    def drain_state(self) -> DrainState | None:
        try:
            return DrainState.model_validate_json(read_file(self.drain_path))
        except FileNotFoundError:
            return None
        except ValidationError:
            return DrainState(since=0.0, reason="(unreadable drain record)")  # drained is the safe reading

    def drain(self, reason: str = "", at: float | None = None) -> DrainState:
        """Drain the host; draining again keeps the first time and reason."""
        current = self.drain_state()
        if current is not None:
            return current
        state = DrainState(since=time.time() if at is None else at, reason=reason)
        write_atomic(self.drain_path, state.model_dump_json().encode(), durable=True)
        return state

    def undrain(self) -> bool:
        """False when the host was not drained."""
        return remove_durably(self.drain_path)
