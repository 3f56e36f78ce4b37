"""dpfd's `gossip:` settings: validation errors that name the field, the key file, the address others dial, key
rotation on the running member's keyring, and `dpfd` refusing to start (exit 2) with a key file it cannot use."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dpfd.config import ConfigError, GossipSettings, parse_config, read_gossip_keys
from dpfd.gossip.keyring import Keyring
from dpfd.gossip_member import advertise_address, member_meta, reload_keys

REPO = Path(__file__).resolve().parents[3]
BASE = "node: dpu-1\netcd: {endpoints: ['http://127.0.0.1:2379']}\n"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_gossip_is_off_by_default_so_existing_configs_keep_working() -> None:
    config = parse_config(BASE)
    assert not config.gossip.enabled
    assert (config.gossip.bind, config.gossip.profile, config.gossip.rejoin_interval) == ("0.0.0.0:7946", "lan", 10.0)
    assert config.dpu is None


def test_a_full_gossip_section_and_the_dpu_identity_parse() -> None:
    config = parse_config(
        BASE + "role: dpu\n"
        "gossip: {enabled: true, bind: '127.0.0.1:0', advertise: '10.0.0.5:7000', profile: local,"
        " keyFile: /etc/dpf/gossip.key, rejoinInterval: 2.5}\n"
        "dpu: {hostNode: worker-1, pciAddress: 0000-03-00}\n"
    )
    g = config.gossip
    assert (g.enabled, g.bind, g.advertise, g.profile, g.rejoin_interval) == (
        True, "127.0.0.1:0", "10.0.0.5:7000", "local", 2.5,
    )  # fmt: skip
    assert g.key_file == Path("/etc/dpf/gossip.key")
    assert config.dpu is not None and (config.dpu.host_node, config.dpu.pci_address) == ("worker-1", "0000-03-00")
    meta = member_meta(config, "1.2.3", 100.0, "10.0.0.5:7000")
    assert (meta.role, meta.node, meta.host, meta.pci, meta.addresses) == (
        "dpu", "dpu-1", "worker-1", "0000-03-00", {"gossip": "10.0.0.5:7000"},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("gossip", "expected"),
    [
        ("{enabled: true}", "field 'gossip': Value error, keyFile is required when gossip is enabled"),
        ("{bind: 'gossip.example:7946'}", "field 'gossip.bind': Value error, bad gossip address"),
        ("{bind: '10.0.0.1'}", "field 'gossip.bind': Value error, bad gossip address '10.0.0.1': expected host:port"),
        ("{bind: '10.0.0.1:70000'}", "field 'gossip.bind': Value error, bad gossip address '10.0.0.1:70000': port"),
        (
            "{advertise: '0.0.0.0:7946'}",
            "field 'gossip.advertise': Value error, '0.0.0.0:7946' must be an address others can dial",
        ),
        ("{advertise: '10.0.0.1:0'}", "field 'gossip.advertise': Value error, '10.0.0.1:0' must be an address"),
        (
            "{enabled: true, keyFile: /k, bind: '0.0.0.0:0'}",
            "field 'gossip': Value error, bind '0.0.0.0:0' (any address, any port) needs advertise",
        ),
        ("{profile: campus}", "field 'gossip.profile': Input should be 'lan', 'wan' or 'local'"),
        ("{rejoinInterval: 0}", "field 'gossip.rejoinInterval': Input should be greater than 0"),
        ("{keyfile: /k}", "field 'gossip.keyfile': unknown field"),
    ],
)
def test_bad_gossip_settings_are_refused_naming_the_field(gossip: str, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + f"gossip: {gossip}\n")
    assert str(err.value).startswith("<config>: " + expected), str(err.value)


def test_a_bad_pci_address_in_the_dpu_identity_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"field 'dpu\.pciAddress'"):
        parse_config(BASE + "dpu: {hostNode: worker-1, pciAddress: '0000:03:00.0'}\n")


def test_key_file_one_base64_key_per_line_primary_first(tmp_path: Path) -> None:
    keys = [os.urandom(32), os.urandom(16), os.urandom(24)]
    path = tmp_path / "gossip.key"
    path.write_text(f"# rotated 2026-01\n{b64(keys[0])}\n\n  {b64(keys[1])}  \n{b64(keys[2])}")
    assert read_gossip_keys(path) == keys


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "key file not found"),
        ("", "no key in the file"),
        ("# only a comment\n", "no key in the file"),
        ("not base64!\n", "line 1 is not base64"),
        (b64(b"x" * 32) + "\n" + b64(b"short") + "\n", "line 2 is a 5-byte key; keys are 16, 24 or 32 bytes"),
    ],
)
def test_unusable_key_files_are_config_errors_naming_the_field(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "gossip.key"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as err:
        read_gossip_keys(path)
    assert str(err.value).startswith(f"field 'gossip.keyFile': {path}: {expected}"), str(err.value)


def test_a_key_file_that_cannot_be_read_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"field 'gossip.keyFile': .*: cannot read key file: Is a directory"):
        read_gossip_keys(tmp_path)


def test_dpfd_exits_2_when_its_key_file_cannot_be_used(tmp_path: Path) -> None:
    config = tmp_path / "dpfd.yaml"
    config.write_text(BASE + f"gossip: {{enabled: true, keyFile: {tmp_path / 'missing.key'}}}\n")
    out = subprocess.run(
        [sys.executable, "-m", "dpfd.daemon", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )  # fmt: skip
    assert out.returncode == 2, out
    assert f"field 'gossip.keyFile': {tmp_path / 'missing.key'}: key file not found" in out.stderr


def test_the_address_others_dial() -> None:
    def settings(text: str) -> GossipSettings:
        return parse_config(BASE + f"gossip: {text}\n").gossip

    endpoints = ["http://127.0.0.1:2379"]
    assert advertise_address(settings("{advertise: '10.1.2.3:7000'}"), endpoints) == "10.1.2.3:7000"
    assert advertise_address(settings("{bind: '127.0.0.2:7001'}"), endpoints) == "127.0.0.2:7001"
    # Bound to port 0: known only once bound.
    assert advertise_address(settings("{bind: '127.0.0.1:0'}"), endpoints) is None
    # Bound to any address: the one the kernel routes to etcd from (loopback here), with the bound port.
    assert advertise_address(settings("{}"), endpoints) == "127.0.0.1:7946"
    assert advertise_address(settings("{bind: '[::]:7946'}"), ["http://[::1]:2379"]) == "[::1]:7946"


def test_key_rotation_on_the_running_keyring() -> None:
    old, new, spare = os.urandom(32), os.urandom(32), os.urandom(16)
    keyring = Keyring([old, spare])
    reload_keys(keyring, [new, old])  # step 1 and 2 of a rotation: the new key installed and signing
    assert keyring.keys == (new, old)
    assert keyring.primary == new
    reload_keys(keyring, [new])  # step 3: the old key gone
    assert list(keyring.keys) == [new]
