"""Live progress for `dpf-sim up`: one line whenever a DPU appears, changes phase or goes away."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

DPUS = "/apis/provisioning.dpu.nvidia.com/v1alpha1/dpus"


class ProgressPrinter:
    def __init__(self, base_url: str, say: Callable[[str], None]) -> None:
        self.base_url = base_url.rstrip("/")
        self.say = say
        self.phases: dict[str, str] = {}

    def _show(self, event: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata", {})
        key = f"{meta.get('namespace')}/{meta.get('name')}"
        if event == "DELETED":
            if self.phases.pop(key, None) is not None:
                self.say(f"DPU {key} deleted")
            return
        phase = obj.get("status", {}).get("phase") or "(no phase yet)"
        if self.phases.get(key) == phase:
            return
        first = key not in self.phases
        self.phases[key] = phase
        node = obj.get("spec", {}).get("nodeName", "?")
        self.say(f"DPU {key} on {node}: {'created, ' if first else ''}phase {phase}{_why(obj)}")

    async def run(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as http:
            while True:
                try:
                    async with http.get(self.base_url + DPUS) as resp:
                        if resp.status != 200:
                            await asyncio.sleep(1)
                            continue
                        listing = await resp.json()
                    for item in listing.get("items", []):
                        self._show("ADDED", item)
                    rv = listing["metadata"]["resourceVersion"]
                    url = f"{self.base_url}{DPUS}?watch=true&resourceVersion={rv}"
                    async with http.get(url) as resp:
                        async for line in resp.content:
                            if not line.strip():
                                continue
                            event = json.loads(line)
                            if event.get("type") == "ERROR":
                                break  # 410 Gone or similar: list again
                            self._show(str(event.get("type")), event.get("object", {}))
                except (aiohttp.ClientError, ValueError, KeyError):
                    await asyncio.sleep(1)


def _why(obj: dict[str, Any]) -> str:
    """What the DPU waits on or why it failed (a False condition), else the last step it finished."""
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
