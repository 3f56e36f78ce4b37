"""dpfctl reads the fleet from a real etcd: members, intents and reports, as a table or JSON."""

from __future__ import annotations

import json
import subprocess
import sys

from dpfd.api.intents import Intent, ObjectRef, Report
from dpfd.sim.ports import free_port
from dpfd.store import Put, Store, keys

REF = ObjectRef(kind="DPU", namespace="dpf-operator-system", name="worker-1-0000-03-00")


def dpfctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dpfd.cli.main", *args], capture_output=True, text=True, timeout=30)


async def test_get_reports_members_and_intents(etcd_endpoints: list[str]) -> None:
    async with await Store.connect(etcd_endpoints) as store:
        await store.commit(
            [
                Put(keys.member_key("worker-1"), json.dumps({"role": "host", "node": "worker-1", "version": "0.1.0"})),
                Put(keys.intent_key("worker-1", REF), Intent(node="worker-1", ref=REF, generation=3).model_dump_json()),
                Put(
                    keys.report_key("worker-1", REF),
                    Report(node="worker-1", ref=REF, observedGeneration=3, phase="Initializing").model_dump_json(),
                ),
            ]
        )
    etcd = ",".join(etcd_endpoints)

    table = dpfctl("--etcd", etcd, "get", "reports")
    assert table.returncode == 0, table.stderr
    header, row = table.stdout.splitlines()
    assert header.split() == ["NODE", "KIND", "NAMESPACE", "NAME", "OBSERVED", "PHASE", "UPDATED"]
    assert row.split()[:6] == ["worker-1", "DPU", "dpf-operator-system", REF.name, "3", "Initializing"]

    members = json.loads(dpfctl("--etcd", etcd, "get", "members", "-o", "json").stdout)
    assert [(m["node"], m["role"]) for m in members] == [("worker-1", "host")]
    intents = json.loads(dpfctl("--etcd", etcd, "get", "intents", "--node", "worker-1", "-o", "json").stdout)
    assert [i["generation"] for i in intents] == [3]
    assert json.loads(dpfctl("--etcd", etcd, "get", "intents", "--node", "worker-2", "-o", "json").stdout) == []


def test_unreachable_etcd_is_one_clear_line_and_exit_1() -> None:
    out = dpfctl("--etcd", f"http://127.0.0.1:{free_port()}", "get", "members")
    assert out.returncode == 1
    assert out.stderr.startswith("dpfctl: cannot read etcd at http://127.0.0.1:")
    assert len(out.stderr.strip().splitlines()) == 1


def test_no_endpoints_is_a_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "dpfd.cli.main", "get", "members"],
        capture_output=True, text=True, timeout=30,
        env={"PATH": "/usr/bin:/bin", "DPFD_CONFIG": "/nonexistent/dpfd.yaml"},
    )  # fmt: skip
    assert out.returncode == 2
    assert "no etcd endpoints" in out.stderr
