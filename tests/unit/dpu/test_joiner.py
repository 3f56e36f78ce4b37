"""The join runner against a small script standing in for kubeadm that records its argv and config.

This tests our runner (arguments, file mode, timeout, output in errors, retries, the marker), not kubeadm.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from dpfd.agent.backoff import Backoff
from dpfd.dpu.joiner import DpuRole, Joiner
from dpfd.dpu.kubeadm_run import JoinError, run_kubeadm_join
from dpfd.dpu.settings import JoinSettings
from tests.waiting import eventually

CA_HASH = "sha256:" + "ab" * 32
FAST = Backoff(base=0.01, cap=0.05, jitter=0.0)

# Records argv, the config file's mode and content; fails while a countdown file says so.
FAKE_KUBEADM = """#!{python}
import json, os, stat, sys, time
calls = {calls!r}
config = sys.argv[sys.argv.index("--config") + 1]
entry = {{"argv": sys.argv[1:], "mode": stat.S_IMODE(os.stat(config).st_mode), "config": open(config).read()}}
with open(calls, "a") as f:
    f.write(json.dumps(entry) + "\\n")
behaviour = {behaviour!r}
if os.path.exists(behaviour):
    what = open(behaviour).read().split()
    if what[0] == "fail" and int(what[1]) > 0:
        open(behaviour, "w").write(f"fail {{int(what[1]) - 1}}")
        print("error execution phase preflight: couldn't validate the identity of the API Server")
        sys.exit(1)
    if what[0] == "hang":
        print("[preflight] Running pre-flight checks", flush=True)
        time.sleep(60)
print("This node has joined the cluster")
"""


def settings(kubeadm: Path, **kw: object) -> JoinSettings:
    base: dict[str, object] = {
        "apiServerEndpoint": "127.0.0.1:6443",
        "token": "abcdef.0123456789abcdef",
        "caCertHashes": [CA_HASH],
        "nodeLabels": {"zone": "a"},
        "kubeadm": str(kubeadm),
    }
    base.update(kw)
    return JoinSettings.model_validate(base)


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(kubeadm script, calls log, behaviour file)."""
    calls, behaviour = tmp_path / "calls.jsonl", tmp_path / "behaviour"
    script = tmp_path / "bin" / "kubeadm"
    script.parent.mkdir()
    script.write_text(FAKE_KUBEADM.format(python=sys.executable, calls=str(calls), behaviour=str(behaviour)))
    script.chmod(0o755)
    return script, calls, behaviour


def calls_of(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


async def test_join_runs_kubeadm_with_the_config_and_leaves_a_marker(
    tmp_path: Path, fake: tuple[Path, Path, Path]
) -> None:
    kubeadm, log, _ = fake
    joiner = Joiner(settings(kubeadm), "dpu-a", tmp_path / "state", backoff=FAST)
    await asyncio.wait_for(joiner.run(), 30)
    [call] = calls_of(log)
    config_path = tmp_path / "state/kubeadm/join-config.yaml"
    assert call["argv"] == ["join", "--config", str(config_path)]
    assert call["mode"] == 0o600  # it holds the bootstrap token
    doc = yaml.safe_load(str(call["config"]))
    assert doc["nodeRegistration"] == {"name": "dpu-a", "kubeletExtraArgs": {"node-labels": "zone=a"}}
    assert doc["discovery"]["bootstrapToken"]["token"] == "abcdef.0123456789abcdef"
    marker = json.loads((tmp_path / "state/kubeadm/joined.json").read_text())
    assert (marker["node"], marker["apiServerEndpoint"]) == ("dpu-a", "127.0.0.1:6443")
    assert not config_path.exists()  # the token is gone once joined
    assert joiner.attempts == 1


async def test_node_name_from_settings_wins(tmp_path: Path, fake: tuple[Path, Path, Path]) -> None:
    kubeadm, log, _ = fake
    await Joiner(settings(kubeadm, nodeName="other-name"), "dpu-a", tmp_path, backoff=FAST).run()
    assert yaml.safe_load(str(calls_of(log)[0]["config"]))["nodeRegistration"]["name"] == "other-name"


async def test_failures_are_retried_until_success(tmp_path: Path, fake: tuple[Path, Path, Path]) -> None:
    kubeadm, log, behaviour = fake
    behaviour.write_text("fail 2")
    joiner = Joiner(settings(kubeadm), "dpu-a", tmp_path, backoff=FAST)
    await asyncio.wait_for(joiner.run(), 30)
    assert len(calls_of(log)) == 3
    assert joiner.attempts == 3 and joiner.last_error is None
    assert joiner.joined()


async def test_marker_means_no_second_join(tmp_path: Path, fake: tuple[Path, Path, Path]) -> None:
    kubeadm, log, _ = fake
    await Joiner(settings(kubeadm), "dpu-a", tmp_path, backoff=FAST).run()
    again = Joiner(settings(kubeadm), "dpu-a", tmp_path, backoff=FAST)
    await asyncio.wait_for(again.run(), 5)
    assert len(calls_of(log)) == 1
    assert again.attempts == 0


async def test_failure_carries_status_and_output(tmp_path: Path, fake: tuple[Path, Path, Path]) -> None:
    kubeadm, _, behaviour = fake
    behaviour.write_text("fail 1")
    config = tmp_path / "join.yaml"
    config.write_text("x")
    with pytest.raises(JoinError) as err:
        await run_kubeadm_join(str(kubeadm), config, 30)
    assert str(err.value) == (
        f"{kubeadm} join --config {config}: exited with status 1: "
        "error execution phase preflight: couldn't validate the identity of the API Server"
    )


async def test_timeout_kills_kubeadm_and_keeps_its_output(tmp_path: Path, fake: tuple[Path, Path, Path]) -> None:
    kubeadm, _, behaviour = fake
    behaviour.write_text("hang")
    config = tmp_path / "join.yaml"
    config.write_text("x")
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(JoinError, match=r"did not finish within 1s; output: \[preflight\] Running pre-flight checks"):
        await run_kubeadm_join(str(kubeadm), config, 1.0)
    assert loop.time() - started < 10  # killed, not waited for


async def test_missing_kubeadm_is_named(tmp_path: Path) -> None:
    config = tmp_path / "join.yaml"
    config.write_text("x")
    with pytest.raises(JoinError, match=r"'no-such-kubeadm-here' not found \(join\.kubeadm; PATH=/nowhere\)"):
        await run_kubeadm_join("no-such-kubeadm-here", config, 5, env={"PATH": "/nowhere"})
    not_executable = tmp_path / "kubeadm"
    not_executable.write_text("#!/bin/sh\n")
    with pytest.raises(JoinError, match=r"cannot execute .*Permission denied"):
        await run_kubeadm_join(str(not_executable), config, 5)


async def test_dpu_role_retries_in_the_background_and_stops(tmp_path: Path, fake: tuple[Path, Path, Path]) -> None:
    kubeadm, log, behaviour = fake
    behaviour.write_text("fail 1000")
    role = DpuRole(settings(kubeadm), "dpu-a", tmp_path)
    assert role.joiner is not None
    role.joiner.backoff = FAST
    role.start()
    await eventually(lambda: len(calls_of(log)) >= 3, within=20, what="three join attempts")
    assert role.joiner.last_error is not None and "exited with status 1" in role.joiner.last_error
    await asyncio.wait_for(role.stop(), 10)
    count = len(calls_of(log))
    assert not role.joiner.joined()
    # Stopped means stopped: a fresh short wait sees no new attempt.
    with pytest.raises(AssertionError):
        await eventually(lambda: len(calls_of(log)) > count, within=0.3, what="another attempt")


async def test_dpu_role_without_join_does_nothing(tmp_path: Path) -> None:
    role = DpuRole(None, "dpu-a", tmp_path).start()
    assert role.joiner is None
    await role.stop()
    assert not os.listdir(tmp_path)  # no join config, no marker
