"""dpfd configuration: loading, defaults, path overrides and one-line errors naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpfd.config import DEFAULT_CONFIG_PATH, ConfigError, config_path, load_config, parse_config
from dpfd.daemon import build_parser, main

FULL = """\
node: host-1
role: dpu
etcd:
  endpoints: [http://127.0.0.1:2379, https://10.0.0.1:2379]
stateDir: /tmp/dpfd-state
runtimeDir: /tmp/dpfd-run
sessionTTL: 4.5
logLevel: debug
sysfsRoot: /tmp/sys
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "dpfd.yaml"
    p.write_text(text)
    return p


def test_full_config_uses_camel_case_keys(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, FULL))
    assert cfg.node == "host-1"
    assert cfg.role == "dpu"
    assert cfg.etcd.endpoints == ["http://127.0.0.1:2379", "https://10.0.0.1:2379"]
    assert cfg.state_dir == Path("/tmp/dpfd-state")
    assert cfg.runtime_dir == Path("/tmp/dpfd-run")
    assert cfg.session_ttl == 4.5
    assert cfg.log_level == "debug"
    assert cfg.sysfs_root == Path("/tmp/sys")


def test_defaults() -> None:
    cfg = parse_config("node: n1\netcd: {endpoints: ['http://127.0.0.1:1']}\n")
    assert cfg.role == "host"
    assert cfg.state_dir == Path("/var/lib/dpfd")
    assert cfg.runtime_dir == Path("/run/dpfd")
    assert cfg.session_ttl == 10.0
    assert cfg.log_level == "info"
    assert cfg.sysfs_root == Path("/sys")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("etcd: {endpoints: ['http://a:1']}\n", "field 'node': required field is missing"),
        ("node: n1\n", "field 'etcd': required field is missing"),
        ("node: n1\netcd: {endpoints: []}\n", "field 'etcd.endpoints'"),
        ("node: n1\netcd: {endpoints: ['a:1']}\n", "must be a URL"),
        ("node: n1\nrole: switch\netcd: {endpoints: ['http://a:1']}\n", "field 'role'"),
        ("node: n1\nsessionTTL: 0.5\netcd: {endpoints: ['http://a:1']}\n", "field 'sessionTTL'"),
        ("node: n1\nsesionTTL: 5\netcd: {endpoints: ['http://a:1']}\n", "field 'sesionTTL': unknown field"),
        ("node: a/b\netcd: {endpoints: ['http://a:1']}\n", "field 'node'"),
        ("- just\n- a list\n", "expected a mapping of settings, got list"),
    ],
)
def test_bad_field_names_field_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as ei:
        load_config(path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}: ")
    assert expected in msg
    assert "\n" not in msg


def test_bad_yaml_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "node: n1\netcd:\n  endpoints: [http://a:1\nrole: host\n")
    with pytest.raises(ConfigError, match=r"invalid YAML at line \d+ column \d+") as ei:
        load_config(path)
    assert "\n" not in str(ei.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found") as ei:
        load_config(tmp_path / "nope.yaml")
    assert str(tmp_path / "nope.yaml") in str(ei.value)


def test_path_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DPFD_CONFIG", raising=False)
    assert config_path() == DEFAULT_CONFIG_PATH
    monkeypatch.setenv("DPFD_CONFIG", str(tmp_path / "env.yaml"))
    assert config_path() == tmp_path / "env.yaml"
    assert config_path(tmp_path / "cli.yaml") == tmp_path / "cli.yaml"
    (tmp_path / "env.yaml").write_text("node: from-env\netcd: {endpoints: ['http://a:1']}\n")
    assert load_config().node == "from-env"


def test_daemon_reports_config_error_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["--config", str(write(tmp_path, "node: n1\n"))])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1
    assert err.startswith("dpfd: error: ") and "field 'etcd': required field is missing" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("dpfd ") and out.split()[1][0].isdigit()


@pytest.mark.parametrize(
    "argv",
    [["--config", "/c.yaml"], ["--config", "/c.yaml", "run"], ["run", "--config", "/c.yaml"]],
)
def test_run_is_the_default_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.command in (None, "run") and args.config == "/c.yaml"
