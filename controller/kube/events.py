"""Kubernetes Events for notable actions, best effort: a bounded queue drained by a few writers.

Events never slow reconciles down: when the queue is full they are dropped, and a failed write is logged
at debug level only.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from controller.kube.client import KubeClient
from controller.kube.objects import Obj, name_of, namespace_of, resource_version_of, uid_of
from controller.kube.resources import EVENTS
from dpfd.api.conditions import now_rfc3339

log = logging.getLogger(__name__)

COMPONENT = "dpf-controller"


class EventRecorder:
    def __init__(self, client: KubeClient, *, max_queued: int = 1000, writers: int = 2) -> None:
        self.client = client
        self.writers = writers
        self.dropped = 0
        self.written = 0
        self._queue: asyncio.Queue[Obj] = asyncio.Queue(maxsize=max_queued)

    def record(self, obj: Obj, kind: str, api_version: str, event_type: str, reason: str, message: str) -> None:
        """Queue an Event about `obj` (event_type "Normal" or "Warning")."""
        ns = namespace_of(obj) or "default"
        now = now_rfc3339()
        event: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{name_of(obj)}.{secrets.token_hex(8)}", "namespace": ns},
            "involvedObject": {
                "apiVersion": api_version,
                "kind": kind,
                "name": name_of(obj),
                "namespace": namespace_of(obj),
                "uid": uid_of(obj),
                "resourceVersion": resource_version_of(obj),
            },
            "reason": reason,
            "message": message[:1024],
            "type": event_type,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for _ in range(self.writers):
                tg.create_task(self._writer())

    async def _writer(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.client.create(EVENTS, event)
                self.written += 1
            except Exception as exc:
                log.debug("event not written", extra={"error": repr(exc), "reason": event["reason"]})
