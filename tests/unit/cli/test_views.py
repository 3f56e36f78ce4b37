"""How dpfctl shows one dpfd's answers: status, DPUs with their progress bars, one DPU described, events."""

from __future__ import annotations

import json
import time

import yaml

from dpfd.cli import views
from dpfd.cli.output import bar, proto_dict, size
from dpfd.proto.dpf.admin.v1 import admin_pb2

NOW = 1_800_000_000.0


def dpu(**overrides: object) -> admin_pb2.Dpu:
    fields: dict[str, object] = {
        "name": "worker-1-0000-03-00",
        "namespace": "dpf-operator-system",
        "node": "worker-1",
        "pci_address": "0000-03-00",
        "bfb": "bf-bundle",
        "phase": "OS Installing",
        "has_intent": True,
        "history": [
            admin_pb2.PhaseEntry(phase="Initializing", at=NOW - 300),
            admin_pb2.PhaseEntry(phase="Pending", at=NOW - 290),
            admin_pb2.PhaseEntry(phase="OS Installing", at=NOW - 90),
        ],
    }
    fields.update(overrides)
    return admin_pb2.Dpu(**fields)  # type: ignore[arg-type]


def test_sizes_and_bars() -> None:
    assert (size(512), size(1536), size(3 << 30)) == ("512 B", "1.5 KiB", "3.0 GiB")
    assert bar(1 << 20, 4 << 20) == "[#####---------------]  25% 1.0 MiB/4.0 MiB"
    assert bar(5, 0) == "5 B"  # no total known: just the bytes
    assert bar(9, 4).startswith("[####################] 100%")


def test_a_dpu_row_shows_the_bytes_moving_else_why_it_waits() -> None:
    installing = dpu(progress=admin_pb2.StepProgress(step="install", done=2 << 20, total=4 << 20))
    assert views.dpu_row(installing, NOW) == ["dpf-operator-system", "worker-1-0000-03-00", "OS Installing", "0000-03-00",
                                              "bf-bundle", "1m", "install [##########----------]  50% 2.0 MiB/4.0 MiB"]  # fmt: skip
    waiting = dpu(conditions=[admin_pb2.Condition(type="Initialized", status="True"),
                              admin_pb2.Condition(type="DMSRunning", status="False", reason="DMSTargetUnknown",
                                                  message="no DMS is configured")])  # fmt: skip
    assert views.dpu_state(waiting) == "DMSTargetUnknown: no DMS is configured"
    held = dpu(held=True, conditions=[admin_pb2.Condition(type="Initialized", status="False", reason="HostDrained")])
    assert views.dpu_state(held) == "held: host drained"
    failed = dpu(phase="Error", attempts=2, error=admin_pb2.DpuError(phase="OS Installing", reason="DMSInstallError"))
    assert views.dpu_state(failed) == "DMSInstallError (attempt 2)"
    assert views.dpu_state(dpu(has_intent=False)) == "released (intent gone)"


def test_describe_shows_each_phase_with_when_it_began_and_how_long_it_lasted() -> None:
    text = views.describe(dpu(events=[admin_pb2.Event(at=NOW - 5, type="phase", kind="DPU", namespace="ns", name="d",
                                                      previous_phase="Pending", phase="OS Installing")]), "table", NOW)  # fmt: skip
    lines = text.splitlines()
    assert lines[0].split() == ["Name:", "worker-1-0000-03-00"]
    phases = lines[lines.index("Phases:") + 1 : lines.index("Conditions:")]
    assert phases[0].split() == ["PHASE", "ENTERED", "FOR"]
    assert [p.split()[0] for p in phases[1:]] == ["Initializing", "Pending", "OS"]
    assert [p.split()[-1] for p in phases[1:]] == ["10s", "3m20s", "1m30s"]
    assert "DPU ns/d: Pending -> OS Installing" in lines[-1]


def test_machine_output_has_every_field_with_numbers_as_numbers() -> None:
    d = dpu(lock_token=123456789012)
    as_json = json.loads(views.dpus([d], "json"))[0]
    assert as_json["lock_token"] == 123456789012 and as_json["error"] is None
    assert [h["phase"] for h in as_json["history"]] == ["Initializing", "Pending", "OS Installing"]
    assert yaml.safe_load(views.describe(d, "yaml")) == proto_dict(d)


def test_status_in_words() -> None:
    st = admin_pb2.GetStatusResponse(
        node="worker-1", role="host", version="0.1.0", started=time.time() - 7300, ready=True, intents=4, busy=1, dpus=2,
        etcd=admin_pb2.EtcdStatus(endpoint="http://10.0.0.1:2379", connected=True, registered=True, fencing_token=77),
        drain=admin_pb2.DrainStatus(draining=True, reason="rack maintenance", in_flight=1, node="worker-1"),
    )  # fmt: skip
    lines = {k: v.strip() for k, v in (line.split(":", 1) for line in views.status(st, "table").splitlines())}
    assert lines == {
        "Node": "worker-1 (host, dpfd 0.1.0, up 2h)",
        "etcd": "connected to http://10.0.0.1:2379, registered (fencing token 77)",
        "Intents": "4, 1 reconciling",
        "DPUs": "2",
        "Drain": "draining (rack maintenance): 1 DPU(s) still finishing their step",
        "Gossip": "off",
    }
    st.drain.in_flight = 0
    assert "drained (rack maintenance): no provisioning work runs" in views.status(st, "table")


def test_event_lines() -> None:
    e = admin_pb2.Event(at=NOW, type="report", kind="DPU", namespace="ns", name="d", phase="Pending",
                        progress=admin_pb2.StepProgress(step="download", done=1 << 20, total=2 << 20))  # fmt: skip
    assert views.event_line(e, "table").endswith("report   DPU ns/d: Pending download [##########----------]  50% "
                                                 "1.0 MiB/2.0 MiB")  # fmt: skip
    missed = admin_pb2.Event(at=NOW, type="missed", missed=3, message="3 events dropped")
    assert views.event_line(missed, "table").endswith("missed   3 events dropped")
    assert json.loads(views.event_line(e, "json"))["progress"]["done"] == 1 << 20
