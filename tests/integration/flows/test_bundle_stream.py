"""Bundles streamed to ovs-ofctl while chains are still being built (BridgeFlows._stream, BundleStream)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from dpfd.agent.keyed_runner import KeyedRunner
from dpfd.api.intents import Intent, ObjectRef
from dpfd.dpu.flows.applier import BridgeFlows
from dpfd.dpu.flows.model import Labels, PortUnresolved, chain_cookie
from dpfd.dpu.flows.ofctl import BundleStream, Ofctl, OfctlError
from dpfd.dpu.flows.reconciler import ServiceChainReconciler
from tests.ovs_fixture import PrivateOvs

BR = "br-sfc"


def flows_of(ovs: PrivateOvs, cookie: int) -> list[str]:
    out = ovs.ofctl("dump-flows", BR, f"cookie={cookie:#x}/-1", "--no-stats")
    return sorted(line.strip() for line in out.splitlines() if "actions=" in line)


async def test_chains_reconciled_while_the_bundle_is_written_join_it(ovs: PrivateOvs) -> None:
    ovs.add_bridge(BR)
    n = 200

    async def lookup(namespace: str, labels: Labels) -> int:
        try:
            return int(labels["ofport"])
        except KeyError:
            raise PortUnresolved(str(labels)) from None

    rec = ServiceChainReconciler("dpu1", lookup, ovs.mgmt(BR))
    its = {}
    for i in range(n):
        ports = [{"serviceInterface": {"matchLabels": {"ofport": str(2 * i + k + 1)}}} for k in (0, 1)]
        it = Intent(node="dpu1", ref=ObjectRef(kind="ServiceChain", namespace="ns", name=f"c{i}"), generation=1,
                    spec={"switches": [{"ports": ports}]})  # fmt: skip
        its[it.ref] = it
    phases: list[str] = []

    async def one(ref: ObjectRef) -> None:
        report = await rec.reconcile(ref, its[ref])
        phases.append(report.phase if report else "none")

    runner: KeyedRunner[ObjectRef] = KeyedRunner(one, concurrency=2)
    for ref in its:
        runner.kick(ref)
    await runner.wait_idle()
    assert phases == ["Ready"] * n
    # Two at a time, yet the chains went out together (the first bundle may hold only the first chains).
    assert rec.flows.bundles <= 2, rec.flows.bundles
    assert all(len(flows_of(ovs, chain_cookie("ns", f"c{i}"))) == 2 for i in (0, n // 2, n - 1))


class _Signalling(Ofctl):
    """Ofctl whose streams set `written` after each write (to set a chain again while its bundle is open)."""

    written: asyncio.Event

    async def open_bundle(self) -> BundleStream:
        stream = await super().open_bundle()
        orig = stream.write

        async def write(lines: Sequence[str]) -> None:
            await orig(lines)
            self.written.set()

        stream.write = write  # type: ignore[method-assign]
        return stream


async def test_a_chain_set_again_while_its_bundle_is_written_ends_with_its_latest_flows(ovs: PrivateOvs) -> None:
    ovs.add_bridge(BR)
    ofctl = _Signalling(target=ovs.mgmt(BR))
    ofctl.written = asyncio.Event()
    flows = BridgeFlows(ofctl)
    first = flows.submit_texts(7, ("cookie=0x7,table=0,priority=20,in_port=1,actions=output:2",))
    await ofctl.written.wait()  # the first flows are in the open bundle
    second = flows.submit_texts(7, ("cookie=0x7,table=0,priority=20,in_port=3,actions=output:4",))
    assert first is not None and second is not None
    await asyncio.gather(first, second)
    assert flows.bundles == 1
    assert flows_of(ovs, 7) == ["cookie=0x7, priority=20,in_port=3 actions=output:4"]
    assert flows.installed() == {7: ("cookie=0x7,table=0,priority=20,in_port=3,actions=output:4",)}


async def test_a_refused_line_fails_the_streamed_bundle_whole(ovs: PrivateOvs) -> None:
    ovs.add_bridge(BR)
    ofctl = Ofctl(target=ovs.mgmt(BR))
    stream = await ofctl.open_bundle()
    await stream.write(["add cookie=0x8,priority=20,in_port=1,actions=output:2"])
    await stream.write(["add cookie=0x9,priority=20,in_port=1,actions=output:no_such_port"])
    with pytest.raises(OfctlError, match="no_such_port"):
        await stream.close()
    assert flows_of(ovs, 8) == []  # atomic: the good line went nowhere either
