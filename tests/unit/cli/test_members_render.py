"""dpfctl members: how the answer is shown, and where the socket is looked for."""

from __future__ import annotations

import json
import socket
import tempfile

import pytest

from dpfd.cli import main as dpfctl
from dpfd.cli import members
from dpfd.proto.dpf.admin.v1 import admin_pb2

NOW = 1_800_000_000.0


def dpu(**overrides: object) -> admin_pb2.Member:
    fields: dict[str, object] = {
        "name": "worker-1-0000-03-00",
        "address": "10.0.0.12:7946",
        "state": "dead",
        "incarnation": 7,
        "role": "dpu",
        "node": "worker-1-0000-03-00",
        "version": "0.1.0",
        "started": NOW - 125,
        "host": "worker-1",
        "pci": "0000-03-00",
    }
    fields.update(overrides)
    return admin_pb2.Member(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (3600, "1h"), (86399, "23h"), (86400 * 3 + 5, "3d")],
)
def test_age(seconds: int, shown: str) -> None:
    assert members.age(NOW - seconds, NOW) == shown


def test_age_of_a_member_that_did_not_say_when_it_started() -> None:
    assert members.age(0.0, NOW) == ""


def test_table_columns_and_placement_only_for_dpus() -> None:
    host = admin_pb2.Member(name="worker-1", address="10.0.0.2:7946", state="alive", incarnation=1, role="host",
                            started=NOW - 7200, host="ignored")  # fmt: skip
    text = members.render([host, dpu()], "table", now=NOW)
    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "ROLE", "ADDRESS", "HOST/PCI", "INCARNATION", "AGE"]
    assert lines[1].split() == ["worker-1", "alive", "host", "10.0.0.2:7946", "1", "2h"]
    assert lines[2].split() == [
        "worker-1-0000-03-00",
        "dead",
        "dpu",
        "10.0.0.12:7946",
        "worker-1/0000-03-00",
        "7",
        "2m",
    ]
    assert lines[1].index("10.0.0.2") == lines[2].index("10.0.0.12")  # aligned


def test_a_member_whose_metadata_did_not_decode() -> None:
    bare = admin_pb2.Member(name="odd", address="10.0.0.9:7946", state="suspect", incarnation=2)
    assert members.render([bare], "table", now=NOW).splitlines()[1].split() == ["odd", "suspect", "10.0.0.9:7946", "2"]


def test_json_carries_every_field() -> None:
    m = dpu(addresses={"gossip": "10.0.0.12:7946", "oob": "192.168.1.12"})
    [shown] = json.loads(members.render([m], "json"))
    assert shown == {
        "name": "worker-1-0000-03-00",
        "address": "10.0.0.12:7946",
        "state": "dead",
        "incarnation": 7,
        "role": "dpu",
        "node": "worker-1-0000-03-00",
        "version": "0.1.0",
        "started": NOW - 125,
        "addresses": {"gossip": "10.0.0.12:7946", "oob": "192.168.1.12"},
        "host": "worker-1",
        "pci": "0000-03-00",
    }


def test_an_empty_view_is_just_the_header() -> None:
    assert members.render([], "table").split() == ["NAME", "STATE", "ROLE", "ADDRESS", "HOST/PCI", "INCARNATION", "AGE"]
    assert members.render([], "json") == "[]"


def test_socket_path_flag_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(members.SOCKET_ENV, raising=False)
    assert members.socket_path(None) == "/run/dpfd/admin.sock"
    monkeypatch.setenv(members.SOCKET_ENV, "/tmp/x/admin.sock")
    assert members.socket_path(None) == "/tmp/x/admin.sock"
    assert members.socket_path("/srv/admin.sock") == "/srv/admin.sock"


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        dpfctl.main(["members", "--output", "wide"])
    assert done.value.code == 2
    assert "invalid choice: 'wide'" in capsys.readouterr().err


def test_a_socket_path_where_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="dpfctl-", dir="/tmp") as d:  # short: unix socket paths are limited
        path = f"{d}/admin.sock"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.bind(path)  # bound, not listening: what a daemon that died leaves
            assert dpfctl.main(["members", "--socket", path]) == 1
    assert capsys.readouterr().err == f"dpfctl: nothing listens on {path} (dpfd is not running, or stopped uncleanly)\n"
