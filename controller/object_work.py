"""What every controller family's work shares: one work queue of object keys, drained by `workers` reconcile loops
until the leadership term ends. A family subclasses it, provides `reconcile`, and feeds the queue from its caches."""

from __future__ import annotations

from controller.kube.objects import ObjKey, describe
from controller.queue import Result, WorkQueue, run_workers


class ObjectWork:
    def __init__(self, kind: str, workers: int) -> None:
        """``kind`` names the queue (logs and the dpf_controller_* metrics' ``queue`` label)."""
        self.kind = kind
        self.queue: WorkQueue[ObjKey] = WorkQueue(kind)
        self.workers = workers

    async def reconcile(self, key: ObjKey) -> Result:
        raise NotImplementedError

    def busy(self) -> bool:
        return not self.queue.idle()

    async def run(self) -> None:
        try:
            await run_workers(self.queue, self.reconcile, self.workers, lambda k: describe(self.kind, k))
        finally:
            self.shut_down()

    def shut_down(self) -> None:
        self.queue.shut_down()
