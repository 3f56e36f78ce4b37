"""Live progress for `dpf-sim up`: one line whenever a DPUCluster or a DPU appears, changes phase or goes away."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from dpfd.sim.watch import keep_watching

API = "/apis/provisioning.dpu.nvidia.com/v1alpha1"
KINDS = {"DPUCluster": API + "/dpuclusters", "DPU": API + "/dpus"}


class ProgressPrinter:
    def __init__(self, base_url: str, say: Callable[[str], None]) -> None:
        self.base_url = base_url.rstrip("/")
        self.say = say
        self.phases: dict[tuple[str, str], str] = {}  # (kind, namespace/name) -> the phase last shown

    def _show(self, kind: str, event: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata", {})
        name = f"{meta.get('namespace')}/{meta.get('name')}"
        key = (kind, name)
        if event == "DELETED":
            if self.phases.pop(key, None) is not None:
                self.say(f"{kind} {name} deleted")
            return
        phase = obj.get("status", {}).get("phase") or "(no phase yet)"
        if self.phases.get(key) == phase:
            return
        first = key not in self.phases
        self.phases[key] = phase
        where = f" on {obj.get('spec', {}).get('nodeName', '?')}" if kind == "DPU" else ""
        self.say(f"{kind} {name}{where}: {'created, ' if first else ''}phase {phase}{_why(obj)}")

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as http, asyncio.TaskGroup() as tg:
            for kind, path in KINDS.items():
                tg.create_task(self._follow(http, kind, path))

    async def _follow(self, http: aiohttp.ClientSession, kind: str, path: str) -> None:
        async def listed(items: list[dict[str, Any]]) -> None:
            for item in items:
                self._show(kind, "ADDED", item)

        async def changed(event: str, obj: dict[str, Any]) -> None:
            self._show(kind, event, obj)

        await keep_watching(http, self.base_url + path, f"{kind}s", listed, changed)


def _why(obj: dict[str, Any]) -> str:
    """What the object waits on or why it failed (a False condition), else the last step it finished."""
    conditions = obj.get("status", {}).get("conditions", [])
    waiting = [c for c in conditions if c.get("status") == "False"]
    if waiting:
        c = waiting[-1]
        return f" [{c['type']}: {c.get('reason', '')}: {c.get('message', '')}]"
    done = [c for c in conditions if c.get("status") == "True"]
    if not done:
        return ""
    # A finished step says how, where it matters (Rebooted: "DPU back: its dpfd joined gossip").
    message = done[-1].get("message")
    return f" [{done[-1]['type']}: {message}]" if message else f" [{done[-1]['type']}]"
