"""`-w`: keep a DPU listing (or one DPU's description) current from the daemon's WatchEvents stream.

On a terminal the view is redrawn in place at every change, progress bars and all. Otherwise (a pipe, a log file)
the view is printed once and then one line per change, with a download's or install's progress every 10 %.
`--until PHASE` ends the watch (exit 0) once the DPU, or every DPU listed, is in that phase.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

from dpfd.cli import views
from dpfd.cli.client import AdminClient
from dpfd.proto.dpf.admin.v1 import admin_pb2

PROGRESS_STEP = 10  # percent between progress lines when not on a terminal


class Watch:
    def __init__(
        self,
        client: AdminClient,
        render: Callable[[], tuple[str, list[admin_pb2.Dpu]]],
        *,
        name: str = "",
        output: str = "table",
        until: str | None = None,
        out: TextIO | None = None,
        tty: bool | None = None,
    ) -> None:
        """``render()``: the view as it is now, and the DPUs it shows (for ``until``)."""
        self.client = client
        self.render = render
        self.name = name
        self.output = output
        self.until = until
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self._drawn = 0  # lines of the last drawing (terminal)
        self._shown: dict[tuple[str, str, str], int] = {}  # progress step last printed, per DPU and step

    def run(self) -> int:
        synced = False
        phases: dict[tuple[str, str], str] = {}  # what each DPU shown is in, kept current from the events
        request = admin_pb2.WatchEventsRequest(kind="DPU", name=self.name)
        for event in self.client.stream("WatchEvents", request):
            if event.type in ("synced", "missed"):
                # The state now: after "synced" every change arrives as an event; after a gap, read it again.
                synced = True
                text, shown = self.render()
                phases = {(d.namespace, d.name): d.phase for d in shown}
                if self.tty:
                    self._draw(text)
                elif event.type == "synced":
                    self._print(text)
                else:
                    self._print(views.event_line(event, self.output))
            elif synced:
                key = (event.namespace, event.name)
                if event.type == "deleted":
                    phases.pop(key, None)
                elif event.phase and (key in phases or not self.name):
                    phases[key] = event.phase
                if self.tty:
                    self._draw(self.render()[0])
                elif self._worth_a_line(event):
                    self._print(views.event_line(event, self.output))
            if synced and self.until and phases and all(p == self.until for p in phases.values()):
                return 0
        return 0

    def _worth_a_line(self, event: admin_pb2.Event) -> bool:
        if event.type != "report" or not event.HasField("progress"):
            return True
        p = event.progress
        if p.total <= 0:
            return False
        step = min(100, p.done * 100 // p.total) // PROGRESS_STEP * PROGRESS_STEP
        key = (event.namespace, event.name, p.step)
        if self._shown.get(key) == step:
            return False
        self._shown[key] = step
        return True

    def _draw(self, text: str) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")  # back to where the last drawing began, and clear below
        self.out.write(text + "\n")
        self.out.flush()
        self._drawn = text.count("\n") + 1

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()
