"""`-w`: the view redrawn in place on a terminal, lines (progress every 10 %) otherwise, and `--until`."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from dpfd.cli.watch import Watch
from dpfd.proto.dpf.admin.v1 import admin_pb2

NS = "ns"


class Events:
    """What WatchEvents would stream; the watch asks for nothing else of the client."""

    def __init__(self, events: list[admin_pb2.Event]) -> None:
        self.events = events
        self.requests: list[Any] = []

    def stream(self, method: str, request: Any) -> Iterator[admin_pb2.Event]:
        self.requests.append((method, request))
        yield from self.events


def report(name: str, phase: str, done: int = 0, total: int = 0, previous: str = "") -> admin_pb2.Event:
    e = admin_pb2.Event(type="phase" if previous else "report", kind="DPU", namespace=NS, name=name, phase=phase,
                        previous_phase=previous, at=1.0)  # fmt: skip
    if total:
        e.progress.CopyFrom(admin_pb2.StepProgress(step="install", done=done, total=total))
    return e


def view(phases: dict[str, str]) -> Any:
    """A render function over ``phases`` (changed by the test as events are read)."""

    def render() -> tuple[str, list[admin_pb2.Dpu]]:
        shown = [admin_pb2.Dpu(name=n, namespace=NS, phase=p) for n, p in phases.items()]
        return "\n".join(f"{d.name} {d.phase}" for d in shown), shown

    return render


def test_lines_when_not_a_terminal_with_progress_every_ten_percent() -> None:
    events = [admin_pb2.Event(type="synced")]
    events += [report("d1", "OS Installing", done=i, total=100) for i in range(0, 101, 4)]
    events += [report("d1", "Rebooting", previous="OS Installing"), report("d1", "Ready", previous="Rebooting")]
    out = io.StringIO()
    code = Watch(Events(events), view({"d1": "OS Installing"}), until="Ready", out=out, tty=False).run()  # type: ignore[arg-type]
    lines = out.getvalue().splitlines()
    assert code == 0 and lines[0] == "d1 OS Installing"
    shown = [line.split("%")[0].rsplit(" ", 1)[-1] for line in lines if "install [" in line]
    assert [int(percent) // 10 for percent in shown] == list(range(11))  # the first report in each tenth
    assert lines[-1].endswith("DPU ns/d1: Rebooting -> Ready")


def test_until_waits_for_every_dpu_shown() -> None:
    events = [admin_pb2.Event(type="synced"), report("d1", "Ready", previous="Rebooting"),
              report("d2", "Ready", previous="Rebooting"), report("d2", "never read")]  # fmt: skip
    client = Events(events)
    out = io.StringIO()
    assert Watch(client, view({"d1": "Rebooting", "d2": "Rebooting"}), until="Ready", out=out, tty=False).run() == 0  # type: ignore[arg-type]
    assert "never read" not in out.getvalue()
    assert client.requests[0][1].kind == "DPU"


def test_a_terminal_redraws_the_view_in_place() -> None:
    phases = {"d1": "Pending", "d2": "Ready"}
    render = view(phases)

    def changing() -> tuple[str, list[admin_pb2.Dpu]]:
        phases["d1"] = "DMS Deployment" if phases["d1"] == "Pending" else phases["d1"]
        return render()  # type: ignore[no-any-return]

    out = io.StringIO()
    Watch(Events([admin_pb2.Event(type="synced"), report("d1", "DMS Deployment", previous="Pending")]), changing,  # type: ignore[arg-type]
          out=out, tty=True).run()  # fmt: skip
    first, second = out.getvalue().split("\x1b[2F\x1b[J")  # back over the two lines drawn, clear, draw again
    assert first == "d1 DMS Deployment\nd2 Ready\n" and second == first
