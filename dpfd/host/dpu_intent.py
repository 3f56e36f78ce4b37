"""Kind DPU, accepted but not provisioned: a light host role for the agent's tests and benchmarks.

`DpuOwnershipReconciler` persists each intent under the state dir and reports phase Initializing; nothing touches
a machine. dpfd itself runs the provisioning machine (`dpfd.host.setup.host_reconcilers`).
"""

from __future__ import annotations

from pathlib import Path

from dpfd.agent.reconciler import Reconciler
from dpfd.agent.statefile import read_file, remove_durably, write_atomic
from dpfd.api.conditions import Condition
from dpfd.api.intents import Intent, ObjectRef, Report

KIND = "DPU"
PHASE_INITIALIZING = "Initializing"
PHASE_DELETING = "Deleting"
COND_INITIALIZED = "Initialized"
REASON_ACCEPTED = "HostAgentAccepted"


class DpuIntentStore:
    """The DPU intents this host owns, one file each: `<stateDir>/intents/DPU/<ns>/<name>.json`.

    A copy of what etcd holds, so the host can keep working while etcd is away: written atomically but not
    fsynced (after a power loss it re-reads etcd). Provisioning progress, which must survive, is fsynced.
    """

    def __init__(self, state_dir: Path) -> None:
        self.root = Path(state_dir) / "intents" / KIND
        self._root = str(self.root)
        # What this process last wrote per file: a changed intent is written without first reading the file.
        self._written: dict[str, bytes] = {}

    def path(self, ref: ObjectRef) -> Path:
        return Path(self._file(ref))

    def _file(self, ref: ObjectRef) -> str:
        # A str, not a Path: this runs for every intent change, and pathlib costs more than the file write.
        return f"{self._root}/{ref.namespace}/{ref.name}.json"

    def load(self, ref: ObjectRef) -> Intent | None:
        try:
            return Intent.model_validate_json(read_file(self._file(ref)))
        except FileNotFoundError:
            return None

    def save(self, intent: Intent) -> bool:
        """Persist `intent` atomically; False if the file already holds exactly this."""
        path = self._file(intent.ref)
        data = intent.model_dump_json().encode()  # compact: json with indent falls back to the slow pure-Python encoder
        # Only this host writes the file, so if the last write was other content, the file cannot hold `data`;
        # otherwise (a resync, or nothing written yet by this process) read it to skip an identical rewrite.
        last = self._written.get(path)
        if last is None or last == data:
            try:
                if read_file(path) == data:
                    self._written[path] = data
                    return False
            except FileNotFoundError:
                pass
        self._written.pop(path, None)  # unknown content if the write fails midway
        write_atomic(path, data, durable=False)
        self._written[path] = data
        return True

    def remove(self, ref: ObjectRef) -> bool:
        path = self._file(ref)
        self._written.pop(path, None)
        return remove_durably(path, durable=False)

    def refs(self) -> list[ObjectRef]:
        if not self.root.is_dir():
            return []
        return [
            ObjectRef(kind=KIND, namespace=f.parent.name, name=f.name.removesuffix(".json"))
            for f in sorted(self.root.glob("*/*.json"))
        ]


class DpuOwnershipReconciler:
    """Accepts DPU intents (persists them, reports Initializing) and releases them on deletion."""

    kind = KIND

    def __init__(self, node: str, state_dir: Path) -> None:
        self.node = node
        self.intents = DpuIntentStore(state_dir)

    async def reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None:
        # The intent copy is written in the event loop: without fsync, writing about 1 kB and a rename go to the
        # page cache and do not wait for the disk, and cost far less CPU than a hop to a worker thread (which
        # was most of a reconcile's cost). Files that must be fsynced (provisioning progress) go to a thread.
        if intent is None:
            self.intents.remove(ref)
            return None
        if intent.deleting:
            self.intents.remove(ref)
            return self._report(intent, PHASE_DELETING, conditions=[], details={"released": True})
        self.intents.save(intent)
        accepted = Condition(
            type=COND_INITIALIZED,
            status="True",
            reason=REASON_ACCEPTED,
            message=f"dpfd on {self.node} owns this DPU",
            observedGeneration=intent.generation,
        )
        return self._report(intent, PHASE_INITIALIZING, conditions=[accepted], details={})

    def local_refs(self) -> list[ObjectRef]:
        return self.intents.refs()

    def _report(self, intent: Intent, phase: str, conditions: list[Condition], details: dict[str, object]) -> Report:
        return Report(
            node=self.node,
            ref=intent.ref,
            uid=intent.uid,
            observedGeneration=intent.generation,
            phase=phase,
            conditions=conditions,
            details=details,
        )


def ownership_reconcilers(node: str, state_dir: Path) -> list[Reconciler]:
    """A host role that only accepts DPU intents (for tests and benchmarks of the agent itself)."""
    return [DpuOwnershipReconciler(node, state_dir)]
