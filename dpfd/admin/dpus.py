"""Host role: the DPUs this dpfd provisions, as dpfctl shows them.

Three local sources, read afresh on every call: the intent (what the controller asked for), the durable progress
(phase history with times, the last failure and its retry) and the report last written or queued (phase,
conditions, bytes moved). A DPU whose intent is gone but whose progress is still on disk is listed too: it is being
released.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from dpfd.admin.errors import InvalidArgument, NotFound
from dpfd.admin.events import StepProgress, step_progress
from dpfd.agent.intent_view import IntentEntry
from dpfd.api.intents import ObjectRef
from dpfd.api.wellknown import DPUSET_NAME, DPUSET_NAMESPACE
from dpfd.host.provisioning.progress import PhaseEntry, Progress, ProgressStore, StepError

KIND = "DPU"  # what the host's phase machine (dpfd.host.provisioning.machine) provisions


class LocalNode(Protocol):
    """What the node agent knows now (empty before it has started)."""

    def intents(self) -> list[IntentEntry]: ...

    def report(self, ref: ObjectRef) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class DpuInfo:
    name: str
    namespace: str
    node: str
    phase: str = ""
    pci_address: str = ""
    bfb: str = ""
    flavor: str = ""
    dpu_set: str = ""
    conditions: list[dict[str, Any]] = field(default_factory=list)
    history: list[PhaseEntry] = field(default_factory=list)
    error: StepError | None = None
    attempts: int = 0
    retry_at: float = 0.0
    progress: StepProgress | None = None
    generation: int = 0
    observed_generation: int = 0
    lock_token: int = 0
    deleting: bool = False
    held: bool = False
    updated_at: str = ""
    has_intent: bool = False

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(kind=KIND, namespace=self.namespace, name=self.name)

    @property
    def failing(self) -> bool:
        """A failure is being retried (the phase Error, or a download that keeps failing in Pending)."""
        return self.error is not None or self.attempts > 0

    @property
    def in_flight(self) -> bool:
        """Still doing provisioning work: not Ready, not held by a drain, not being deleted."""
        return self.has_intent and not self.deleting and not self.held and self.phase not in ("Ready", "")


class DpuDirectory:
    def __init__(self, node: str, state_dir: Path, local: LocalNode) -> None:
        self.node = node
        self.progress = ProgressStore(state_dir)
        self.local = local

    def list(self) -> list[DpuInfo]:
        entries = {e.ref: e for e in self.local.intents() if e.ref.kind == KIND}
        refs = set(entries) | set(self.progress.refs(KIND))
        return [self._info(ref, entries.get(ref)) for ref in sorted(refs, key=lambda r: (r.namespace, r.name))]

    def find(self, name: str, namespace: str = "") -> DpuInfo:
        """The DPU named so on this host; NotFound naming it, or InvalidArgument when the name alone is ambiguous."""
        if not name:
            raise InvalidArgument("a DPU name is required")
        found = [d for d in self.list() if d.name == name and (not namespace or d.namespace == namespace)]
        if not found:
            where = f" in namespace {namespace}" if namespace else ""
            raise NotFound(f"DPU {name}{where} is not provisioned by host {self.node} (dpfctl get dpus lists them)")
        if len(found) > 1:
            spaces = ", ".join(d.namespace for d in found)
            raise InvalidArgument(f"DPU {name} exists in several namespaces ({spaces}): name one with -n")
        return found[0]

    def _info(self, ref: ObjectRef, entry: IntentEntry | None) -> DpuInfo:
        progress = self._progress(ref)
        report = self._report(ref)
        intent = entry.intent if entry is not None else None
        spec = intent.spec if intent is not None else {}
        labels = intent.labels if intent is not None else {}
        details: dict[str, Any] = (report or {}).get("details") or {}
        dpu_set = labels.get(DPUSET_NAME, "")
        if dpu_set:
            dpu_set = f"{labels.get(DPUSET_NAMESPACE) or ref.namespace}/{dpu_set}"
        lock = details.get("lock")
        if not isinstance(lock, dict):
            lock = {}
        phase = str((report or {}).get("phase") or (progress.phase if progress is not None else ""))
        return DpuInfo(
            name=ref.name,
            namespace=ref.namespace,
            node=self.node,
            phase=phase,
            pci_address=str(spec.get("pciAddress") or ""),
            bfb=str(spec.get("bfb") or ""),
            flavor=str(spec.get("dpuFlavor") or ""),
            dpu_set=dpu_set,
            conditions=[c for c in (report or {}).get("conditions") or [] if isinstance(c, dict)],
            history=list(progress.history) if progress is not None else [],
            error=progress.error if progress is not None else None,
            attempts=progress.attempts if progress is not None else 0,
            retry_at=progress.next_retry_at if progress is not None and progress.error is not None else 0.0,
            progress=step_progress(details),
            generation=entry.generation if entry is not None else 0,
            observed_generation=int((report or {}).get("observedGeneration") or 0),
            lock_token=int(lock.get("token") or (progress.fencing_token if progress is not None else 0)),
            deleting=bool(intent.deleting) if intent is not None else False,
            held=bool(details.get("drained")),
            updated_at=str((report or {}).get("updatedAt") or ""),
            has_intent=entry is not None,
        )

    def _progress(self, ref: ObjectRef) -> Progress | None:
        try:
            return self.progress.load(ref)
        except (ValidationError, ValueError, OSError):
            return None  # unreadable: the machine will say so when it reconciles the DPU

    def _report(self, ref: ObjectRef) -> dict[str, Any] | None:
        try:
            return self.local.report(ref)
        except ValueError:  # a name no report key can carry
            return None
