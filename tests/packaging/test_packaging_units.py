"""The systemd units and shipped configuration, checked against systemd and against the code they start.

`systemd-analyze verify` must print nothing (it exits 0 on unknown keys and bad values, which only warn). It runs in
a private mount namespace where /opt is a tmpfs holding stand-in /opt/dpf/bin executables, because verify also
checks that ExecStart exists. The ExecStart lines are parsed by the real CLIs, and the shipped dpfd.yaml by dpfd's
own config model, so a renamed subcommand, flag or default breaks these tests rather than a machine.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, require_tools

from controller.app import parse_args
from dpfd.config import ConfigError, parse_config
from dpfd.daemon import build_parser

UNITS = REPO / "systemd"
DPFD_UNIT = UNITS / "dpfd.service"
CONTROLLER_UNIT = UNITS / "dpf-controller.service"
SHIPPED_DPFD_YAML = REPO / "packaging" / "etc" / "dpfd.yaml"
SHIPPED_CONTROLLER_ENV = REPO / "packaging" / "etc" / "controller.env"

_VERIFY = r"""
set -eu
mount -t tmpfs tmpfs /opt
mkdir -p /opt/dpf/bin
for b in dpfd dpf-controller; do printf '#!/bin/sh\n' > /opt/dpf/bin/$b; chmod 0755 /opt/dpf/bin/$b; done
exec systemd-analyze verify "$@"
"""


def service_section(unit: Path) -> dict[str, list[str]]:
    """[Service] keys to all their values, in order (systemd allows a key more than once)."""
    section, keys = "", dict[str, list[str]]()
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            keys.setdefault(key.strip(), []).append(value.strip())
    return keys


def one(section: dict[str, list[str]], key: str) -> str:
    values = section[key]
    assert len(values) == 1, f"{key} set {len(values)} times"
    return values[0]


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def test_systemd_analyze_verify_prints_nothing_for_both_units() -> None:
    require_tools("systemd-analyze", "unshare")
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _VERIFY, "verify",
         str(DPFD_UNIT), str(CONTROLLER_UNIT)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_verify_catches_what_it_should(tmp_path: Path) -> None:
    """The check above can fail: a misspelt key in a copy of the unit is reported."""
    require_tools("systemd-analyze", "unshare")
    broken = tmp_path / "dpfd.service"
    broken.write_text(DPFD_UNIT.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    proc = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", _VERIFY, "verify", str(broken)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Unknown key 'WatchdogSecs'" in proc.stderr


def test_dpfd_unit_is_a_notify_service_with_watchdog_restart_and_its_directories() -> None:
    s = service_section(DPFD_UNIT)
    assert one(s, "Type") == "notify"
    assert one(s, "NotifyAccess") == "main"
    assert one(s, "WatchdogSec") == "30s"
    assert one(s, "Restart") == "on-failure"
    assert (one(s, "StateDirectory"), one(s, "RuntimeDirectory"), one(s, "ConfigurationDirectory")) == (
        "dpfd",
        "dpfd",
        "dpf",
    )
    assert one(s, "ProtectSystem") == "strict"
    assert set(one(s, "CapabilityBoundingSet").split()) == {"CAP_NET_ADMIN", "CAP_SYS_ADMIN", "CAP_CHOWN"}


def test_dpfd_execstart_is_a_command_dpfd_accepts() -> None:
    argv = shlex.split(one(service_section(DPFD_UNIT), "ExecStart"))
    assert argv[0] == "/opt/dpf/bin/dpfd"
    args = build_parser().parse_args(argv[1:])
    assert (args.command, args.config, args.version) == ("run", None, False)  # the default /etc/dpf/dpfd.yaml


def test_controller_execstart_with_the_shipped_env_file_is_a_command_the_controller_accepts() -> None:
    s = service_section(CONTROLLER_UNIT)
    assert one(s, "EnvironmentFile") == "/etc/dpf/controller.env"
    assert one(s, "CapabilityBoundingSet") == ""
    env = read_env_file(SHIPPED_CONTROLLER_ENV)
    # systemd's rules: ${VAR} is one word, $VAR splits on whitespace (an empty one vanishes).
    words = []
    for word in shlex.split(one(s, "ExecStart")):
        if word.startswith("${") and word.endswith("}"):
            words.append(env[word[2:-1]])
        elif word.startswith("$"):
            words.extend(env[word[1:]].split())
        else:
            words.append(word)
    assert words[:2] == ["/opt/dpf/bin/dpf-controller", "run"]
    args = parse_args(words[2:])
    assert args.kubeconfig == env["DPF_KUBECONFIG"] == "/etc/dpf/host.kubeconfig"
    assert args.etcd_endpoints == env["DPF_ETCD_ENDPOINTS"]


def test_shipped_dpfd_yaml_wants_only_a_node_name() -> None:
    text = SHIPPED_DPFD_YAML.read_text()
    with pytest.raises(ConfigError, match="field 'node': required field is missing"):
        parse_config(text, "dpfd.yaml")
    config = parse_config(text + "node: worker-1\n", "dpfd.yaml")
    assert config.role == "host"
    assert not config.gossip.enabled  # it needs one key shared by the fleet: the operator turns it on
    # The unit makes exactly these writable / creates them: they must be dpfd's defaults.
    assert (config.state_dir, config.runtime_dir) == (Path("/var/lib/dpfd"), Path("/run/dpfd"))


def test_install_doc_lists_the_capabilities_the_unit_grants() -> None:
    doc = (REPO / "docs" / "install.md").read_text()
    table = set(re.findall(r"^\| `(CAP_[A-Z_]+)` \|", doc, flags=re.MULTILINE))
    assert table == set(one(service_section(DPFD_UNIT), "CapabilityBoundingSet").split())
