"""`dpfctl completion bash|zsh`: the script comes from the argparse tree, and a real bash completes with it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dpfd.cli import completion
from dpfd.cli.main import build_parser, main


def complete(script: str, words: list[str], shell: str = "bash") -> list[str]:
    """What the shell offers for the last of ``words`` (the word being typed, possibly empty)."""
    quoted = " ".join("'" + w + "'" for w in words)
    if shell == "bash":
        program = (
            f'{script}\nCOMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _dpfctl; printf "%s\\n" "${{COMPREPLY[@]}}"'
        )
        argv = ["bash", "--norc", "-c", program]
    else:
        # As zsh's bashcompinit runs a `complete -F` function: in sh emulation (0-based arrays, like bash's).
        program = (f"autoload -U compinit && compinit -u\n{script}\n"
                   f"run() {{ emulate -L sh; COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _dpfctl; "
                   f'printf "%s\\n" "${{COMPREPLY[@]}}"; }}; run')  # fmt: skip
        argv = ["zsh", "-f", "-c", program]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=True)
    # zsh's compgen leaves filtering by what is typed to compadd, which bashcompinit calls next.
    return sorted(line for line in out.stdout.splitlines() if line and line.startswith(words[-1]))


@pytest.fixture(scope="module")
def bash_script() -> str:
    return completion.script(build_parser(), "bash")


def test_commands_kinds_options_and_choices(bash_script: str) -> None:
    assert complete(bash_script, ["dpfctl", ""]) == sorted(
        ["status", "get", "describe", "dpu", "drain", "uncordon", "logs", "events", "members", "completion"]
    )
    assert complete(bash_script, ["dpfctl", "get", ""]) == ["bfbs", "dpus", "dpusets", "intents", "members", "reports"]
    assert complete(bash_script, ["dpfctl", "dpu", "re"]) == ["reflash", "retry"]
    assert complete(bash_script, ["dpfctl", "get", "dpus", "-o", ""]) == ["json", "table", "yaml"]
    assert complete(bash_script, ["dpfctl", "completion", ""]) == ["bash", "zsh"]
    assert "--until" in complete(bash_script, ["dpfctl", "describe", "dpu", "x", "--"])
    assert "--follow" in complete(bash_script, ["dpfctl", "logs", "--f"])


def test_option_values_and_global_options_do_not_move_the_path(bash_script: str) -> None:
    # --etcd takes a value ("describe" here is that value's text, not the command), before the command.
    assert complete(bash_script, ["dpfctl", "--etcd", "http://x:2379", "g"]) == ["get"]
    assert complete(bash_script, ["dpfctl", "--socket", "/run/dpfd/admin.sock", "get", "d"]) == ["dpus", "dpusets"]
    # A DPU's name is no subcommand: what follows is still describe's.
    assert "--namespace" in complete(bash_script, ["dpfctl", "describe", "dpu", "worker-1-0000-03-00", "--n"])


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_runs_the_same_completion_through_bashcompinit() -> None:
    script = completion.script(build_parser(), "zsh")
    assert script.startswith("#compdef dpfctl\n")
    assert complete(script, ["dpfctl", "get", "dpu"], shell="zsh") == ["dpus", "dpusets"]
    assert complete(script, ["dpfctl", "--etcd", "http://x:2379", "get", "dpus", "-o", ""], shell="zsh") == [
        "json",
        "table",
        "yaml",
    ]


def test_the_command_prints_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# bash completion for dpfctl") and out.rstrip().endswith("complete -F _dpfctl dpfctl")
