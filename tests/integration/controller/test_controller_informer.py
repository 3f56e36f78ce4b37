"""The informer and the dynamic client against the emulated API: list+watch, 410 Gone, resync, errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from controller_harness import NFD, NS, KubeEnv, dpuset_obj, kube, node_obj, wait_until

from controller.kube.client import ApiError, KubeClient
from controller.kube.informer import Informer
from controller.kube.resources import DPUSETS, NODES

__all__ = ["kube"]  # fixtures


@pytest_asyncio.fixture
async def client(kube: KubeEnv) -> AsyncIterator[KubeClient]:
    c = await KubeClient.from_kubeconfig(str(kube.kubeconfig))
    yield c
    await c.close()


async def run_informer(inf: Informer) -> asyncio.Task[None]:
    task = asyncio.create_task(inf.run())
    await asyncio.wait_for(inf.synced.wait(), 10)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_list_then_watch_fills_the_cache_and_calls_handlers(kube: KubeEnv, client: KubeClient) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    seen: list[tuple[str, str]] = []
    inf = Informer(client, NODES)
    inf.add_handler(lambda ev, obj, old: seen.append((ev, obj["metadata"]["name"])))
    task = await run_informer(inf)
    try:
        assert [o["metadata"]["name"] for o in inf.list()] == ["worker-0"]
        await kube.server.apply_object(node_obj("worker-1"))
        await kube.server.apply_object(node_obj("worker-0", enabled=False))
        await kube.server.delete_object("v1", "Node", "worker-1")
        await wait_until(lambda: ("DELETED", "worker-1") in seen, what="delete seen")
        assert seen == [("ADDED", "worker-0"), ("ADDED", "worker-1"), ("MODIFIED", "worker-0"), ("DELETED", "worker-1")]
        cached = inf.get("", "worker-0")
        assert cached is not None and cached["metadata"]["labels"][f"{NFD}dpu-enabled"] == "false"
        assert inf.get("", "worker-1") is None
    finally:
        await stop(task)


async def test_relists_after_410_gone(kube: KubeEnv, client: KubeClient) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    inf = Informer(client, NODES, backoff_initial=0.01)
    task = await run_informer(inf)
    try:
        assert inf.lists == 1
        # Move the server past the informer's resourceVersion, forget the history, end the watches:
        # the informer resumes from a compacted version, gets 410 Gone, and must list again.
        await kube.server.apply_object(dpuset_obj())
        await kube.server.compact()
        kube.server.store.end_watches()
        await wait_until(lambda: inf.lists == 2, what="re-list after 410")
        await kube.server.apply_object(node_obj("worker-1"))
        await wait_until(lambda: inf.get("", "worker-1") is not None, what="watching again after the re-list")
    finally:
        await stop(task)


async def test_relist_reports_what_changed_while_not_watching(kube: KubeEnv, client: KubeClient) -> None:
    await kube.server.apply_object(node_obj("worker-0"))
    await kube.server.apply_object(node_obj("worker-1"))
    events: list[tuple[str, str]] = []
    inf = Informer(client, NODES, backoff_initial=0.01)
    inf.add_handler(lambda ev, obj, old: events.append((ev, obj["metadata"]["name"])))
    task = await run_informer(inf)
    await stop(task)
    events.clear()
    await kube.server.delete_object("v1", "Node", "worker-1")
    await kube.server.apply_object(node_obj("worker-2"))
    task = await run_informer(inf)  # synced stays set; wait for the new list instead
    try:
        await wait_until(lambda: inf.lists == 2, what="second list")
        assert sorted(events) == [("ADDED", "worker-2"), ("DELETED", "worker-1")]
    finally:
        await stop(task)


async def test_resync_redelivers_the_cache(kube: KubeEnv, client: KubeClient) -> None:
    await kube.server.apply_object(dpuset_obj("set-1"))
    await kube.server.apply_object(dpuset_obj("set-2"))
    resynced: set[str] = set()
    inf = Informer(client, DPUSETS, resync_period=0.05)
    inf.add_handler(lambda ev, obj, old: resynced.add(obj["metadata"]["name"]) if ev == "RESYNC" else None)
    task = await run_informer(inf)
    try:
        await wait_until(lambda: resynced == {"set-1", "set-2"}, what="both re-delivered")
    finally:
        await stop(task)


async def test_indexes_follow_changes(kube: KubeEnv, client: KubeClient) -> None:
    inf = Informer(client, NODES)
    inf.add_index("pci", lambda o: [o["metadata"]["labels"][f"{NFD}dpu-0-pci-address"]])
    task = await run_informer(inf)
    try:
        await kube.server.apply_object(node_obj("worker-0", pci="0000-03-00"))
        await wait_until(lambda: inf.by_index("pci", "0000-03-00"), what="indexed")
        await kube.server.apply_object(node_obj("worker-0", pci="0000-04-00"))
        await wait_until(lambda: inf.by_index("pci", "0000-04-00"), what="re-indexed")
        assert inf.by_index("pci", "0000-03-00") == []
        await kube.server.delete_object("v1", "Node", "worker-0")
        await wait_until(lambda: not inf.by_index("pci", "0000-04-00"), what="dropped from the index")
    finally:
        await stop(task)


async def test_client_errors_name_the_object(kube: KubeEnv, client: KubeClient) -> None:
    with pytest.raises(ApiError) as info:
        await client.get(DPUSETS, NS, "missing")
    assert info.value.not_found and "DPUSet dpf-operator-system/missing" in str(info.value)
    created: dict[str, Any] = await client.create(DPUSETS, dpuset_obj("set-x"))
    with pytest.raises(ApiError) as info:
        await client.create(DPUSETS, dpuset_obj("set-x"))
    assert info.value.already_exists
    patched = await client.patch(
        DPUSETS, NS, "set-x", {"status": {"dpuStatistics": {"Ready": 1}}}, subresource="status"
    )
    assert patched["status"]["dpuStatistics"] == {"Ready": 1}
    stale = {"metadata": {"labels": {"a": "b"}, "resourceVersion": created["metadata"]["resourceVersion"]}}
    with pytest.raises(ApiError) as info:
        await client.patch(DPUSETS, NS, "set-x", stale)
    assert info.value.conflict
    await client.delete(DPUSETS, NS, "set-x")
    with pytest.raises(ApiError) as info:
        await client.delete(DPUSETS, NS, "set-x")
    assert info.value.not_found
