"""`dpfctl get dpus|bfbs|dpusets --fleet`: the views built from the intents and reports read from etcd."""

from __future__ import annotations

from typing import Any

from dpfd.api.wellknown import DPUSET_NAME, DPUSET_NAMESPACE
from dpfd.cli import fleet

NS = "dpf-operator-system"


def ref(kind: str, name: str) -> dict[str, str]:
    return {"kind": kind, "namespace": NS, "name": name}


def dpu_intent(node: str, name: str, dpuset: str | None = "hbn") -> dict[str, Any]:
    labels = {DPUSET_NAME: dpuset, DPUSET_NAMESPACE: NS} if dpuset else {}
    return {"node": node, "ref": ref("DPU", name), "generation": 1, "labels": labels,
            "spec": {"pciAddress": "0000-03-00", "bfb": "bf-bundle"}}  # fmt: skip


def report(node: str, kind: str, name: str, phase: str, **details: Any) -> dict[str, Any]:
    return {"node": node, "ref": ref(kind, name), "phase": phase, "observedGeneration": 1, "details": details}


SNAP = fleet.Snapshot(
    intents=[
        dpu_intent("w1", "w1-0000-03-00"),
        dpu_intent("w2", "w2-0000-03-00"),
        dpu_intent("w3", "w3-0000-03-00", dpuset=None),
        *(
            {
                "node": n,
                "ref": ref("BFB", "bf-bundle"),
                "generation": 1,
                "spec": {"url": "http://x/bf.bfb", "fileName": "bf.bfb"},
            }
            for n in ("w1", "w2", "w3")
        ),
    ],
    reports=[
        report("w1", "DPU", "w1-0000-03-00", "Ready"),
        report("w2", "DPU", "w2-0000-03-00", "OS Installing", progress={"installed": 1, "size": 2}),
        report("w1", "BFB", "bf-bundle", "Ready"),
        report("w2", "BFB", "bf-bundle", "Downloading", progress={"downloaded": 5, "size": 10}),
    ],
)


def test_dpus_join_reports_with_their_intents() -> None:
    got = fleet.dpus(SNAP)
    assert [(d["node"], d["name"], d["phase"], d["dpuSet"], d["pciAddress"]) for d in got] == [
        ("w1", "w1-0000-03-00", "Ready", "hbn", "0000-03-00"),
        ("w2", "w2-0000-03-00", "OS Installing", "hbn", "0000-03-00"),
    ]  # w3 has not reported yet
    assert got[1]["progress"] == {"installed": 1, "size": 2}


def test_bfbs_count_their_hosts_and_how_far_each_got() -> None:
    assert fleet.bfbs(SNAP) == [{"namespace": NS, "name": "bf-bundle", "url": "http://x/bf.bfb", "fileName": "bf.bfb",
                                 "hosts": 3, "ready": 1, "phases": {"Downloading": 1, "Ready": 1}}]  # fmt: skip


def test_dpusets_from_their_dpus_labels() -> None:
    assert fleet.dpusets(SNAP) == [{"namespace": NS, "name": "hbn", "dpus": 2, "ready": 1,
                                    "phases": {"OS Installing": 1, "Ready": 1}, "bfbs": ["bf-bundle"]}]  # fmt: skip
    table = fleet.render_table("dpusets", fleet.dpusets(SNAP)).splitlines()
    assert table[0].split() == ["NAMESPACE", "NAME", "DPUS", "READY", "PHASES", "BFB"]
    assert table[1].split() == [NS, "hbn", "2", "1", "OS", "Installing=1", "Ready=1", "bf-bundle"]
