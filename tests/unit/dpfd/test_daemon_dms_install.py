from pathlib import Path

import pytest

from dpfd.daemon import main


def test_dms_install_is_a_dpfd_subcommand_that_needs_no_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DPFD_CONFIG", str(tmp_path / "absent.yaml"))  # would fail `dpfd run`
    bfb = tmp_path / "bf.bfb"
    bfb.write_bytes(b"x")
    code = main(["dms-install", "--target", "127.0.0.1:1", "--bfb", str(bfb), "--bf-cfg", str(tmp_path / "no.cfg"),
                 "--insecure"])  # fmt: skip
    assert code == 2
    assert "cannot read bf.cfg" in capsys.readouterr().err
