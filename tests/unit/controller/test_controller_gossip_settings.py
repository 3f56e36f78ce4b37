"""dpf-controller's gossip flags and key file: dpfd's settings model and key file format, named as flags."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from controller.app import parse_args, run_main
from controller.gossip_member import GossipSettingsError, load_keyring
from dpfd.config import GossipSettings

BASE = ["--kubeconfig", "kc", "--etcd-endpoints", "http://127.0.0.1:2379"]


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_keys_primary_first_comments_and_blank_lines_skipped(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# rotated in March\n\n{b64(b'a' * 32)}\n  {b64(b'b' * 16)}  \n")
    ring = load_keyring(path)
    assert ring.primary == b"a" * 32 and ring.keys == (b"a" * 32, b"b" * 16)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no key in the file"),
        ("not base64!\n", "line 1 is not base64"),
        (f"{b64(b'x' * 32)}\n{b64(b'short')}\n", "line 2 is a 5-byte key; keys are 16, 24 or 32 bytes"),
    ],
)
def test_unusable_key_files(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "keys"
    path.write_text(text)
    with pytest.raises(GossipSettingsError) as caught:
        load_keyring(path)
    assert str(caught.value).startswith(f"--gossip-key-file {path}: ") and error in str(caught.value)


def test_a_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(GossipSettingsError, match=r"--gossip-key-file .*absent: key file not found"):
        load_keyring(tmp_path / "absent")


def test_flags() -> None:
    assert parse_args(BASE).gossip is None  # off unless a key file is given
    args = parse_args(
        [*BASE, "--gossip-key-file", "/etc/dpf/gossip.key", "--gossip-bind", "10.0.0.5:7946",
         "--gossip-advertise", "192.0.2.5:7946", "--gossip-profile", "wan", "--gossip-rejoin-interval", "3"]
    )  # fmt: skip
    assert args.gossip == GossipSettings(
        enabled=True,
        key_file=Path("/etc/dpf/gossip.key"),
        bind="10.0.0.5:7946",
        advertise="192.0.2.5:7946",
        profile="wan",
        rejoin_interval=3.0,
    )


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--gossip-profile", "moon"], "invalid choice: 'moon'"),
        (["--gossip-rejoin-interval", "0"], "--gossip-rejoin-interval: Input should be greater than 0"),
        (["--gossip-bind", "nowhere"], "--gossip-bind: "),
        (["--gossip-advertise", "0.0.0.0:7946"], "--gossip-advertise: Value error, '0.0.0.0:7946' must be an address"),
    ],
)
def test_bad_flags_are_usage_errors(flags: list[str], error: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        parse_args([*BASE, "--gossip-key-file", "k", *flags])
    assert done.value.code == 2
    assert error in capsys.readouterr().err


def test_an_unusable_key_file_stops_the_controller_before_it_connects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "keys"
    bad.write_text("???\n")
    assert run_main([*BASE, "--gossip-key-file", str(bad)]) == 2
    assert capsys.readouterr().err == f"dpf-controller: --gossip-key-file {bad}: line 1 is not base64\n"
