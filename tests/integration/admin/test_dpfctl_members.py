"""`dpfctl members` (a real process) against a real AdminServer fed by a real gossip pair."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from admin_helpers import Pair, start_relay, stop_relay

from dpfd.admin import AdminServer
from tests.waiting import eventually

REPO = Path(__file__).resolve().parents[3]


async def dpfctl(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "dpfd.cli.main",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def table(text: str) -> dict[str, list[str]]:
    """Rows by NAME; the HOST/PCI column may be empty, so columns are cut where the header's are."""
    header, *rows = text.splitlines()
    titles = ["NAME", "STATE", "ROLE", "ADDRESS", "HOST/PCI", "INCARNATION", "AGE"]
    starts = [header.index(t) for t in titles]
    assert starts == sorted(starts), header
    cut = [*starts, None]
    return {r[: starts[1]].strip(): [r[cut[i] : cut[i + 1]].strip() for i in range(len(titles))] for r in rows}


async def test_members_table_and_json(sock_dir: Path, pair: Pair) -> None:
    path = sock_dir / "admin.sock"
    async with AdminServer(path, members=pair.host.members):
        rc, out, err = await dpfctl("members", "--socket", str(path))
        assert (rc, err) == (0, "")
        rows = table(out)
        assert rows["worker-1"][1:5] == ["alive", "host", pair.host.addr, ""]
        assert rows["worker-1"][6] == "1h"  # started 3,700 s ago
        dpu = rows["worker-1-0000-03-00"]
        assert dpu[1:5] == ["alive", "dpu", pair.dpu.addr, "worker-1/0000-03-00"]
        assert int(dpu[5]) >= 1 and dpu[6].endswith("s")

        rc, out, err = await dpfctl("members", "-o", "json", env={"DPF_ADMIN_SOCKET": str(path)})
        assert (rc, err) == (0, "")
        members = {m["name"]: m for m in json.loads(out)}
        assert members["worker-1-0000-03-00"] | {"started": 0, "incarnation": 0} == {
            "name": "worker-1-0000-03-00",
            "address": pair.dpu.addr,
            "state": "alive",
            "incarnation": 0,
            "role": "dpu",
            "node": "worker-1-0000-03-00",
            "version": "0.1.0",
            "started": 0,
            "addresses": {},
            "host": "worker-1",
            "pci": "0000-03-00",
        }


async def test_members_shows_a_dpu_that_died(sock_dir: Path, pair: Pair) -> None:
    path = sock_dir / "admin.sock"
    async with AdminServer(path, members=pair.host.members):
        await pair.dpu.stop()  # abruptly: no leave

        async def dpu_state() -> str:
            rc, out, _ = await dpfctl("members", "--socket", str(path))
            assert rc == 0
            return table(out)["worker-1-0000-03-00"][1]

        async def dead() -> bool:
            return await dpu_state() == "dead"

        await eventually(dead, within=15, what="dpfctl showing the DPU's dpfd dead", poll=0.5)


async def test_errors_are_one_line_with_exit_code_1(sock_dir: Path) -> None:
    path = sock_dir / "admin.sock"
    rc, out, err = await dpfctl("members", "--socket", str(path))
    assert (rc, out) == (1, "")
    assert (
        err == f"dpfctl: no dpfd admin socket at {path} (is dpfd running? --socket or $DPF_ADMIN_SOCKET name another)\n"
    )

    async with AdminServer(path, members=None):
        rc, out, err = await dpfctl("members", "--socket", str(path))
        assert (rc, out, err) == (1, "", "dpfctl: gossip is disabled in /etc/dpf/dpfd.yaml (gossip.enabled)\n")

    async with AdminServer(path, members=list, mode=0o666):
        relay = await start_relay(path, sock_dir / "nobody", groups=[])
        try:
            rc, out, err = await dpfctl("members", "--socket", str(relay.path))
        finally:
            await stop_relay(relay)
        assert (rc, out) == (1, "")
        assert err.startswith("dpfctl: uid 65534 may not use the dpfd admin API: run as root or as a member of group")
        assert err.count("\n") == 1


async def test_usage_errors_exit_2() -> None:
    rc, _, err = await dpfctl("members", "-o", "wide")
    assert rc == 2 and "invalid choice: 'wide'" in err
