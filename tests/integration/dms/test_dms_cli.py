"""`dpfd dms-install` end to end against the standalone emulated DMS (`python -m dpfd.sim.bluefield.dms_server`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpfd.host.dms.certs import CertPaths
from dpfd.host.dms_cli import main
from dpfd.sim.bluefield.dms_state import load_state

REPO = Path(__file__).resolve().parents[3]


class ServerProcess:
    """The standalone emulated DMS in a child process; `address` is parsed from its first output line."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "GRPC_VERBOSITY": "ERROR"}
        cmd = [sys.executable, "-m", "dpfd.sim.bluefield.dms_server", "--listen", "127.0.0.1:0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        if " listening on " not in first:
            self.proc.kill()
            raise AssertionError(
                f"server did not start: {first!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.address = first.rsplit(" ", 1)[1].strip()

    def terminate(self) -> tuple[int, str]:
        """SIGTERM; returns (exit code, last stdout line: the stats JSON)."""
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=20)
        lines = out.strip().splitlines()
        return self.proc.returncode, lines[-1] if lines else ""


@pytest.fixture
def servers() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for s in started:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()


def _files(tmp_path: Path, bfb_body: int = 200_000) -> tuple[Path, Path]:
    from dpfd.sim.bfb_image import make_image

    bfb = tmp_path / "bf-bundle-test.bfb"
    bfb.write_bytes(make_image("bundle", bfb_body))
    cfg = tmp_path / "bf.cfg"
    cfg.write_text("# rendered bf.cfg\n")
    return bfb, cfg


def test_dms_install_over_mtls_end_to_end(
    tmp_path: Path, certs: CertPaths, servers: list[ServerProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    server = ServerProcess(
        ["--ca", str(certs.ca), "--cert", str(certs.server_cert), "--key", str(certs.server_key),
         "--state-dir", str(state), "--reboot-seconds", "0.3", "--name", "dpu-7"]
    )  # fmt: skip
    servers.append(server)
    bfb, cfg = _files(tmp_path)
    code = main(
        ["--target", server.address, "--bfb", str(bfb), "--bf-cfg", str(cfg), "--name", "dpu-7",
         "--ca", str(certs.ca), "--cert", str(certs.client_cert), "--key", str(certs.client_key), "--poll", "0.05"]
    )  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    lines = out.out.splitlines()
    assert lines[0] == "dms-install: dpu-7: set DPU mode: DPU"
    assert f"dms-install: dpu-7: activate {bfb.name};dpu-7.cfg" in lines
    assert lines[-1] == f"dms-install: dpu-7: done: running {bfb.name};dpu-7.cfg"
    assert out.err == ""

    rc, stats_line = server.terminate()
    stats = json.loads(stats_line)
    assert rc == 0
    assert (stats["installs"], stats["activations"], stats["reboots"]) == (2, 1, 1)
    saved = load_state(state)
    assert (saved.installs, saved.reboots, saved.running_version, saved.running_bf_cfg) == (2, 1, bfb.name, "dpu-7.cfg")
    assert (state / "images" / "dpu-7.cfg").read_text() == "# rendered bf.cfg\n"


def test_dms_install_reports_one_error_line_on_integrity_failure(
    tmp_path: Path, servers: list[ServerProcess], capsys: pytest.CaptureFixture[str]
) -> None:
    server = ServerProcess(["--insecure", "--fault", "corrupt"])
    servers.append(server)
    bfb, cfg = _files(tmp_path)
    code = main(["--target", server.address, "--bfb", str(bfb), "--bf-cfg", str(cfg), "--insecure"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith(f"dms-install: error: DMS dpu ({server.address}): OS.Install '{bfb.name}'")
    assert "InstallError INTEGRITY_FAIL" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give --ca, --cert and --key for mTLS, or --insecure"),
        (["--insecure", "--ca", "x"], "--insecure cannot be combined with --ca/--cert/--key"),
        (["--ca", "/nonexistent/ca.crt", "--cert", "c", "--key", "k"], "cannot read TLS CA file /nonexistent/ca.crt"),
    ],
)
def test_bad_arguments_exit_2_before_connecting(
    tmp_path: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bfb, cfg = _files(tmp_path, 10)
    code = main(["--target", "127.0.0.1:1", "--bfb", str(bfb), "--bf-cfg", str(cfg), *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"dms-install: error: {message}") and err.count("\n") == 1


def test_oversized_bf_cfg_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bfb, cfg = _files(tmp_path, 10)
    cfg.write_bytes(b"#" * (128 * 1024 + 1))
    code = main(["--target", "127.0.0.1:1", "--bfb", str(bfb), "--bf-cfg", str(cfg), "--insecure"])
    assert code == 2
    assert f"bf.cfg {cfg} is 131073 bytes, over DMS's limit of 131072 bytes" in capsys.readouterr().err


def test_standalone_server_rejects_bad_flags() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "dpfd.sim.bluefield.dms_server", "--listen", "127.0.0.1:0", "--insecure"]
    bad = subprocess.run([*cmd, "--fault", "explode"], capture_output=True, text=True, env=env, timeout=30)
    assert bad.returncode == 2 and "bad --fault 'explode'" in bad.stderr
    bad = subprocess.run([*cmd, "--fault", "install-error=NOPE"], capture_output=True, text=True, env=env, timeout=30)
    assert bad.returncode == 2 and "unknown InstallError type 'NOPE'" in bad.stderr
