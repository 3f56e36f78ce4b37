"""dpfctl's documented exit codes where no daemon is needed: usage errors are 2, an absent daemon 1, and every error
is one line on stderr."""

from __future__ import annotations

import pytest

from dpfd.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's own usage errors
        code = int(e.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ("get",),  # what to get
        ("get", "widgets"),
        ("describe", "dpu"),  # which DPU
        ("dpu", "restart", "x"),
        ("logs", "--tail", "many"),
        ("status", "-o", "wide"),
    ],
)
def test_usage_errors_are_2(capsys: pytest.CaptureFixture[str], argv: tuple[str, ...]) -> None:
    code, err = run(capsys, *argv)
    assert code == 2 and err.strip()


def test_usage_errors_found_by_dpfctl_itself_are_2_and_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    # Found before the daemon is asked (there is none here).
    assert run(capsys, "logs", "--tail", "-1", "--socket", "/nonexistent/a.sock") == (
        2,
        "dpfctl: --tail must not be negative\n",
    )
    code, err = run(capsys, "status", "--address", "127.0.0.1:1")
    assert code == 2 and err.count("\n") == 1 and "needs --tls-ca, --tls-cert, --tls-key" in err
    code, err = run(capsys, "get", "bfbs", "-w", "--etcd", "http://127.0.0.1:1")
    assert (code, err) == (2, "dpfctl: -w watches the local dpfd; get bfbs from etcd cannot be watched\n")


def test_no_daemon_is_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "status", "--socket", "/nonexistent/admin.sock")
    assert code == 1 and err.startswith("dpfctl: no dpfd admin socket at /nonexistent/admin.sock")
