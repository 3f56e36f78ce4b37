"""ServiceChain flows on a real (private, userspace) Open vSwitch: bundles, cookies, replacement, traces."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dpfd.api.intents import Intent, ObjectRef
from dpfd.dpu.flows.model import Flow, Labels, PortUnresolved, chain_cookie
from dpfd.dpu.flows.ofctl import Ofctl, OfctlError, flow_cookie
from dpfd.dpu.flows.reconciler import ServiceChainReconciler
from tests.ovs_fixture import PrivateOvs

BR = "br-sfc"
PORTS = ("p0", "p1", "p2", "p3")


@pytest.fixture
def sfc(ovs: PrivateOvs) -> PrivateOvs:
    ovs.add_bridge(BR)
    for p in PORTS:
        ovs.vsctl("add-port", BR, p, "--", "set", "Interface", p, "type=internal")
    return ovs


def ofport(ovs: PrivateOvs, port: str) -> int:
    return int(ovs.vsctl("get", "Interface", port, "ofport").strip())


def reconciler(ovs: PrivateOvs, **kw: Any) -> ServiceChainReconciler:
    async def lookup(namespace: str, labels: Labels) -> int:
        name = labels["port"]
        out = await asyncio.to_thread(ovs.run, ["ovs-vsctl", f"--db={ovs.db}", "get", "Interface", name, "ofport"],
                                      check=False)  # fmt: skip
        if not out.strip() or int(out) <= 0:
            raise PortUnresolved(f"no ofport for {name} in {namespace}")
        return int(out)

    return ServiceChainReconciler("dpu1", lookup, ovs.mgmt(BR), **kw)


def intent(name: str, *switches: list[str], gen: int = 1) -> Intent:
    spec = {
        "switches": [{"ports": [{"serviceInterface": {"matchLabels": {"port": p}}} for p in sw]} for sw in switches]
    }
    return Intent(node="dpu1", ref=ObjectRef(kind="ServiceChain", namespace="ns", name=name), generation=gen, spec=spec)


def chain_flows_on(ovs: PrivateOvs, name: str) -> list[str]:
    cookie = chain_cookie("ns", name)
    out = ovs.ofctl("dump-flows", BR, f"cookie={cookie:#x}/-1", "--no-stats")
    return [line.strip() for line in out.splitlines() if "actions=" in line]


def trace_outputs(ovs: PrivateOvs, in_port: str) -> str:
    flow = f"in_port={in_port},dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02"
    out = ovs.appctl("ofproto/trace", BR, flow)
    return out.split("Datapath actions:")[-1].strip()


async def test_chain_flows_present_with_cookie_and_trace_follows_them(sfc: PrivateOvs) -> None:
    rec = reconciler(sfc)
    it = intent("chain-dpu1", ["p0", "p1"])
    report = await rec.reconcile(it.ref, it)
    assert report is not None and report.phase == "Ready", report
    assert report.details["cookie"] == f"{chain_cookie('ns', 'chain-dpu1'):#x}"
    flows = chain_flows_on(sfc, "chain-dpu1")
    p0, p1 = ofport(sfc, "p0"), ofport(sfc, "p1")
    assert len(flows) == 2, flows
    assert any(f"in_port={p0}" in f and f"output:{p1}" in f for f in flows), flows
    assert all("priority=20" in f and "learn(" in f for f in flows)
    # The datapath sends p0's traffic to p1 (and learns p0's source MAC).
    dp = trace_outputs(sfc, "p0")
    assert dp and "drop" not in dp, dp
    assert list(rec.local_refs()) == [it.ref]


async def test_changing_a_chain_replaces_its_flows_with_no_stale_ones(sfc: PrivateOvs) -> None:
    rec = reconciler(sfc)
    await rec.reconcile(intent("c", ["p0", "p1"]).ref, intent("c", ["p0", "p1"]))
    before = chain_flows_on(sfc, "c")
    changed = intent("c", ["p0", "p2", "p3"], gen=2)
    report = await rec.reconcile(changed.ref, changed)
    assert report is not None and report.phase == "Ready" and report.details["flows"] == 3
    after = chain_flows_on(sfc, "c")
    p1 = ofport(sfc, "p1")
    assert len(after) == 3 and after != before
    assert not any(f"in_port={p1}," in f or f"output:{p1}" in f for f in after), after
    # Nothing outside the chain's cookie was added either: the bridge holds exactly the chain's flows.
    all_flows = [ln for ln in sfc.ofctl("dump-flows", BR, "--no-stats").splitlines() if "actions=" in ln]
    assert len(all_flows) == 3, all_flows
    # The same spec again costs no bundle.
    n = rec.flows.bundles
    await rec.reconcile(changed.ref, changed)
    assert rec.flows.bundles == n


async def test_deleting_the_chain_deletes_its_flows_learned_ones_too(sfc: PrivateOvs) -> None:
    rec = reconciler(sfc)
    it = intent("c", ["p0", "p1"])
    await rec.reconcile(it.ref, it)
    # A packet from p0 makes the switch learn a priority-30 flow with the chain's cookie.
    sfc.appctl("ofproto/trace", BR, "in_port=p0,dl_src=02:00:00:00:00:01,dl_dst=02:00:00:00:00:02", "-generate")
    assert any("priority=30" in f for f in chain_flows_on(sfc, "c")), chain_flows_on(sfc, "c")
    assert await rec.reconcile(it.ref, None) is None
    assert chain_flows_on(sfc, "c") == []
    assert list(rec.local_refs()) == []


async def test_missing_port_reports_pending_and_keeps_current_flows(sfc: PrivateOvs) -> None:
    rec = reconciler(sfc)
    kicks: list[tuple[ObjectRef, float]] = []
    rec._kick = lambda ref, delay: kicks.append((ref, delay))
    await rec.reconcile(intent("c", ["p0", "p1"]).ref, intent("c", ["p0", "p1"]))
    bad = intent("c", ["p0", "nope"], gen=2)
    report = await rec.reconcile(bad.ref, bad)
    assert report is not None and report.phase == "Pending"
    assert report.conditions[0].reason == "PortsNotReady" and "nope" in report.conditions[0].message
    assert kicks == [(bad.ref, rec.retry)]
    assert len(chain_flows_on(sfc, "c")) == 2


async def test_many_chains_share_bundles_and_stale_cookies_are_collected(sfc: PrivateOvs) -> None:
    # Chains on distinct ports (two chains with the same in_port and priority would be one OpenFlow rule).
    n = 10
    args: list[str] = []
    for i in range(2 * n):
        args += ["--", "add-port", BR, f"q{i}", "--", "set", "Interface", f"q{i}", "type=internal"]
    sfc.vsctl(*args)
    rec = reconciler(sfc)
    its = [intent(f"c{i}", [f"q{2 * i}", f"q{2 * i + 1}"]) for i in range(n)]
    reports = await asyncio.gather(*(rec.reconcile(it.ref, it) for it in its))
    assert all(r is not None and r.phase == "Ready" for r in reports), reports
    assert rec.flows.bundles < n, rec.flows.bundles
    assert all(len(chain_flows_on(sfc, f"c{i}")) == 2 for i in range(n))
    # A chain this dpfd does not hold (left from before a restart) is stale; cookie 0 is not ours and stays.
    sfc.ofctl("add-flow", BR, "cookie=0x77,priority=5,in_port=p0,actions=output:p1")
    sfc.ofctl("add-flow", BR, "priority=1,actions=drop")
    assert await rec.collect() == [0x77]
    cookies = {flow_cookie(ln) for ln in sfc.ofctl("dump-flows", BR).splitlines() if "actions=" in ln}
    assert cookies == {0} | {chain_cookie("ns", f"c{i}") for i in range(n)}


async def test_one_bad_chain_in_a_shared_bundle_fails_alone(sfc: PrivateOvs) -> None:
    rec = reconciler(sfc)
    p0, p1 = ofport(sfc, "p0"), ofport(sfc, "p1")

    good = rec.flows.set(1, [Flow(cookie=1, in_port=p0, actions=f"output:{p1}")])
    bad = rec.flows.set(2, [Flow(cookie=2, in_port=p0, actions="output:bogus_port_name")])
    first = rec.flows.set(3, [Flow(cookie=3, in_port=p1, actions=f"output:{p0}")])
    results = await asyncio.gather(first, good, bad, return_exceptions=True)
    assert results[0] is True and results[1] is True
    assert isinstance(results[2], OfctlError) and "bogus_port_name" in str(results[2])
    assert set(rec.flows.installed()) == {1, 3}


async def test_ofctl_errors_carry_the_command_and_stderr(sfc: PrivateOvs) -> None:
    ofctl = Ofctl(target=sfc.mgmt("br-none"))
    with pytest.raises(OfctlError, match=r"ovs-ofctl -O OpenFlow14 .*dump-flows.*br-none"):
        await ofctl.dump_flows()


async def test_a_path_exists_at_every_moment_while_the_chain_changes(sfc: PrivateOvs) -> None:
    rec = reconciler(sfc)
    specs = [intent("c", ["p0", "p1"], gen=1), intent("c", ["p0", "p2"], gen=2)]
    await rec.reconcile(specs[0].ref, specs[0])
    stop = asyncio.Event()
    traces: list[str] = []

    async def watch() -> None:
        while not stop.is_set():
            traces.append(await asyncio.to_thread(trace_outputs, sfc, "p0"))

    watcher = asyncio.create_task(watch())
    for i in range(30):
        it = specs[(i + 1) % 2]
        await rec.reconcile(it.ref, it)
    stop.set()
    await watcher
    assert len(traces) >= 3
    assert all(t and t != "drop" for t in traces), [t for t in traces if not t or t == "drop"]


async def test_a_malformed_spec_fails_with_the_reason_and_touches_nothing(sfc: PrivateOvs) -> None:
    rec = reconciler(sfc)
    it = intent("c", ["p0", "p1"])
    await rec.reconcile(it.ref, it)
    bad = it.model_copy(update={"spec": {"switches": []}, "generation": 2})
    report = await rec.reconcile(bad.ref, bad)
    assert report is not None and report.phase == "Failed" and report.observedGeneration == 2
    assert report.conditions[0].reason == "InvalidSpec" and "switches" in report.conditions[0].message
    assert len(chain_flows_on(sfc, "c")) == 2
