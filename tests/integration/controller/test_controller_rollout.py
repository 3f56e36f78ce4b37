"""DPUSet rollouts and DPU removal with the real controller, the emulated Kubernetes API and a real etcd.

The test plays the hosts' dpfd: it registers each host as a member and writes DPU reports into etcd (a DPU
on the original template is Ready at once; a recreated one goes through its phases first; a deleted one is
released), so the controller sees what it would see from a fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from controller_harness import (
    NFD,
    NS,
    PROV,
    KubeEnv,
    dpuset_obj,
    kube,
    node_obj,
    start_replica,
    store,
    wait_until,
    write_report,
)

from controller.manager import ControllerOptions
from dpfd.api.conditions import Condition
from dpfd.store import Store
from dpfd.store import keys as store_keys

__all__ = ["kube", "store"]  # fixtures

DPUSET = "dpuset-a"
PROVISIONING_LOG = "controller.reconcilers.provisioning"
OLD_BFB, NEW_BFB = "bf-bundle", "bf-bundle-2"
INSTALL_SECONDS = 0.3  # how long an emulated host takes to bring a recreated DPU to Ready
RELEASE_SECONDS = 0.1  # how long it takes to let go of a deleted DPU


def host_name(i: int) -> str:
    return f"host-{i:02d}"


def dpu_name(i: int) -> str:
    return f"{host_name(i)}-0000-03-00"


@dataclass
class EmulatedHosts:
    """The hosts' side of the contract, played from etcd: reports for every DPU the API server holds."""

    kube: KubeEnv
    store: Store
    release: bool = True  # whether deleted DPUs are let go of
    seen: set[str] = field(default_factory=set)  # DPU uids being (or done) provisioned
    released: set[str] = field(default_factory=set)
    tokens: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    failures: list[BaseException] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)  # the controller's "DPU deletion finished": object, reason

    async def report(self, dpu: dict[str, Any], phase: str, conditions: list[Condition], **details: Any) -> None:
        await write_report(
            self.store,
            dpu["spec"]["nodeName"],
            dpu,
            observedGeneration=dpu["metadata"].get("generation", 1),
            phase=phase,
            conditions=conditions,
            details=details,
            fencingToken=next(self.tokens),
        )

    async def provision(self, dpu: dict[str, Any]) -> None:
        gen = dpu["metadata"].get("generation", 1)
        if dpu["spec"]["bfb"] != OLD_BFB:  # a recreated DPU: flashed before it is Ready
            for phase in ("Initializing", "OS Installing", "DPU Cluster Config"):
                waiting = Condition(type="Ready", status="False", reason="Waiting", observedGeneration=gen)
                await self.report(dpu, phase, [waiting])
                await asyncio.sleep(INSTALL_SECONDS / 3)  # the emulated host's work, not synchronisation
        await self.report(
            dpu, "Ready", [Condition(type="Ready", status="True", reason="Ready", observedGeneration=gen)]
        )

    async def let_go(self, dpu: dict[str, Any]) -> None:
        await asyncio.sleep(RELEASE_SECONDS)
        await self.report(dpu, "Deleting", [], released=True, nodeEffect={"request": "revert"})

    def _spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.discard(t)
            if not t.cancelled() and t.exception() is not None:
                self.failures.append(t.exception())  # type: ignore[arg-type]

        task.add_done_callback(done)

    async def run(self) -> None:
        while True:
            for dpu in self.kube.dpus():
                uid = dpu["metadata"]["uid"]
                if dpu["metadata"].get("deletionTimestamp"):
                    if self.release and uid not in self.released:
                        self.released.add(uid)
                        self._spawn(self.let_go(dpu))
                elif uid not in self.seen:
                    self.seen.add(uid)
                    self._spawn(self.provision(dpu))
            await asyncio.sleep(0.02)  # the emulated hosts' watch interval


@contextlib.asynccontextmanager
async def emulated_hosts(kube: KubeEnv, store: Store, nodes: list[str]) -> AsyncIterator[EmulatedHosts]:
    import logging as _l

    for node in nodes:
        r = await store.put(store_keys.member_key(node), '{"role": "host"}')
        _l.getLogger("DEBUG").warning("member put %s %s", node, r)
    hosts = EmulatedHosts(kube, store)
    recorder = _DeletionsFinished(hosts.finished)
    logger = logging.getLogger(PROVISIONING_LOG)
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(recorder)
    runner = asyncio.create_task(hosts.run())
    try:
        yield hosts
    except BaseException as e:
        e.add_note(f"DPU deletions the controller finished: {hosts.finished}")
        raise
    finally:
        logger.removeHandler(recorder)
        logger.setLevel(level)
        runner.cancel()
        for t in [runner, *hosts.tasks]:
            t.cancel()
        await asyncio.gather(runner, *hosts.tasks, return_exceptions=True)
    assert not hosts.failures, f"emulated hosts failed: {hosts.failures[0]!r}"
    # Every host here is a member and lets go of what it is asked to: no deletion may finish another way.
    assert all("released by node" in f for f in hosts.finished), hosts.finished


class _DeletionsFinished(logging.Handler):
    def __init__(self, into: list[str]) -> None:
        super().__init__(logging.INFO)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "DPU deletion finished":
            self.into.append(f"{getattr(record, 'object', '?')}: {getattr(record, 'reason', '?')}")


def is_ready(dpu: dict[str, Any] | None) -> bool:
    if dpu is None or dpu["metadata"].get("deletionTimestamp"):
        return False
    conds = (dpu.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def on_new_bfb(dpu: dict[str, Any] | None) -> bool:
    return dpu is not None and is_ready(dpu) and dpu["spec"]["bfb"] == NEW_BFB


def rolling_dpuset(bfb: str, max_unavailable: int | str) -> dict[str, Any]:
    obj = dpuset_obj(DPUSET)
    obj["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": max_unavailable}}
    obj["spec"]["dpuTemplate"]["spec"]["bfb"]["name"] = bfb
    return obj


async def test_rolling_update_keeps_within_max_unavailable(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    """12 DPUs, maxUnavailable 25 %, the BFB changes: never more than 3 unavailable, all end Ready on it."""
    count, budget = 12, 3
    nodes = [host_name(i) for i in range(count)]
    names = [dpu_name(i) for i in range(count)]
    for i, node in enumerate(nodes):
        await kube.server.apply_object(node_obj(node, ip=f"10.0.1.{i + 1}"))
    replica = await start_replica(kube, etcd_endpoints, options=ControllerOptions(events=True))
    try:
        async with emulated_hosts(kube, store, nodes) as hosts:
            await kube.server.apply_object(rolling_dpuset(OLD_BFB, "25%"))
            await wait_until(lambda: all(is_ready(kube.dpu(n)) for n in names), 30, "12 DPUs Ready on the old BFB")
            first_uids = {n: kube.dpu(n)["metadata"]["uid"] for n in names}  # type: ignore[index]

            samples: list[int] = []

            def unavailable_now() -> int:
                by_name = {d["metadata"]["name"]: d for d in kube.dpus()}
                return sum(1 for n in names if not is_ready(by_name.get(n)))

            async def sample() -> None:
                while True:
                    samples.append(unavailable_now())
                    await asyncio.sleep(0.005)  # the sampling interval

            sampler = asyncio.create_task(sample())
            try:
                await kube.server.apply_object(rolling_dpuset(NEW_BFB, "25%"))

                def rolled_out() -> bool:
                    dpus = {n: kube.dpu(n) for n in names}
                    return all(on_new_bfb(d) and d["metadata"]["uid"] != first_uids[n] for n, d in dpus.items())  # type: ignore[index]

                await wait_until(rolled_out, 60, "every DPU recreated and Ready on the new BFB")
            finally:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler

            assert max(samples) <= budget, f"up to {max(samples)} DPUs unavailable at once; maxUnavailable is 3"
            # The budget is used, not just respected: whole waves of 3 go at once.
            assert max(samples) == budget, f"at most {max(samples)} DPUs were replaced at once; expected waves of 3"
            assert len(samples) > 50, f"only {len(samples)} samples"
            # Each DPU was replaced exactly once: one deletion released per old DPU, one new incarnation each.
            assert set(first_uids.values()) <= hosts.released
            assert len(hosts.seen) == 2 * count

            def rollout_event() -> str | None:
                for ev in kube.server.objects("v1", "Event", NS):
                    if ev["reason"] == "SuccessfulDelete" and "outdated" in ev["message"]:
                        return str(ev["message"])
                return None

            message = await wait_until(rollout_event, what="an Event about the rollout")
            assert "RollingUpdate: maxUnavailable 3" in message
            await wait_until(
                lambda: (kube.dpuset(DPUSET) or {}).get("status", {}).get("dpuStatistics") == {"Ready": count},
                what="dpuStatistics all Ready",
            )
    finally:
        await replica.stop()


async def test_recreate_replaces_every_outdated_dpu_at_once(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str]
) -> None:
    count = 4
    nodes = [host_name(i) for i in range(count)]
    names = [dpu_name(i) for i in range(count)]
    for node in nodes:
        await kube.server.apply_object(node_obj(node))
    replica = await start_replica(kube, etcd_endpoints)
    try:
        async with emulated_hosts(kube, store, nodes) as hosts:
            hosts.release = False  # hold every deleted DPU, to see them all deleting together
            await kube.server.apply_object(dpuset_obj(DPUSET))  # strategy Recreate
            await wait_until(lambda: all(is_ready(kube.dpu(n)) for n in names), 20, "DPUs Ready")
            changed = dpuset_obj(DPUSET)
            changed["spec"]["dpuTemplate"]["spec"]["bfb"]["name"] = NEW_BFB
            await kube.server.apply_object(changed)
            await wait_until(
                lambda: all((kube.dpu(n) or {}).get("metadata", {}).get("deletionTimestamp") for n in names),
                within=30,  # a loaded CI machine took more than 10 s once; "at once" is checked by the hold above
                what="every outdated DPU deleting at once",
            )
            hosts.release = True
            await wait_until(lambda: all(on_new_bfb(kube.dpu(n)) for n in names), 20, "every DPU Ready on the new BFB")
    finally:
        await replica.stop()


@pytest.mark.parametrize("how", ["narrow the nodeSelector", "delete the DPUSet"])
async def test_deselected_and_orphaned_dpus_are_deleted_once_released(
    kube: KubeEnv, store: Store, etcd_endpoints: list[str], how: str
) -> None:
    """DPF's "Delete a DPU": the DPU is deleted, held by its finalizer until its host lets go, then gone."""
    nodes = [host_name(i) for i in range(3)]
    for i, node in enumerate(nodes):
        obj = node_obj(node)
        obj["metadata"]["labels"]["example.com/rack"] = "a" if i < 2 else "b"
        await kube.server.apply_object(obj)
    replica = await start_replica(kube, etcd_endpoints)
    try:
        async with emulated_hosts(kube, store, nodes) as hosts:
            hosts.release = False
            await kube.server.apply_object(dpuset_obj(DPUSET))
            await wait_until(lambda: all(is_ready(kube.dpu(dpu_name(i))) for i in range(3)), 20, "DPUs Ready")
            if how == "narrow the nodeSelector":
                narrowed = dpuset_obj(DPUSET)
                narrowed["spec"]["nodeSelector"]["matchLabels"]["example.com/rack"] = "a"
                await kube.server.apply_object(narrowed)
                doomed, kept = [dpu_name(2)], [dpu_name(0), dpu_name(1)]
            else:
                await kube.server.delete_object(PROV, "DPUSet", DPUSET, NS)
                doomed, kept = [dpu_name(i) for i in range(3)], []

            def held() -> bool:
                return all(
                    (d := kube.dpu(n)) is not None
                    and d["metadata"].get("deletionTimestamp")
                    and d["metadata"]["finalizers"] == ["provisioning.dpu.nvidia.com/dpu-protection"]
                    for n in doomed
                )

            await wait_until(held, what=f"{doomed} deleting, held by the finalizer until released")
            hosts.release = True
            await wait_until(lambda: all(kube.dpu(n) is None for n in doomed), what=f"{doomed} gone once released")
            # (the controller logs it once the API server has answered, which may be after the DPU is gone)
            expected = [f"DPU {NS}/{n}: released by node {n.removesuffix('-0000-03-00')}" for n in sorted(doomed)]
            await wait_until(lambda: sorted(hosts.finished) == expected, what=f"{expected} logged")
            assert all(is_ready(kube.dpu(n)) for n in kept)
            if how == "delete the DPUSet":
                await wait_until(lambda: kube.dpuset(DPUSET) is None, what="DPUSet gone")
                assert not kube.dpus()
            else:
                ds = kube.dpuset(DPUSET)
                assert ds is not None and ds["spec"]["nodeSelector"]["matchLabels"][f"{NFD}dpu-enabled"] == "true"
    finally:
        await replica.stop()
