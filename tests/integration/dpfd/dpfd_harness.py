"""Helpers for dpfd's integration tests: write intents, read reports and wait on them in real etcd."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from dpfd.agent import AgentOptions, Backoff
from dpfd.api.intents import Intent, ObjectRef
from dpfd.config import DpfdConfig
from dpfd.store import Store, keys
from tests.waiting import eventually

T = TypeVar("T")

NS = "dpf-operator-system"

# Fast timers so tests take seconds, not minutes.
FAST = AgentOptions(
    version="test",
    resync_interval=30.0,
    retry=Backoff(base=0.05, cap=0.5),
    reconnect=Backoff(base=0.05, cap=0.5),
    report_batch_delay=0.005,
    shutdown_timeout=5.0,
    etcd_op_timeout=2.0,
)


def dpu_ref(name: str) -> ObjectRef:
    return ObjectRef(kind="DPU", namespace=NS, name=name)


def make_config(tmp_path: Path, node: str, endpoints: list[str], ttl: float = 10.0) -> DpfdConfig:
    return DpfdConfig.model_validate(
        {
            "node": node,
            "role": "host",
            "etcd": {"endpoints": endpoints},
            "stateDir": str(tmp_path / node / "state"),
            "runtimeDir": str(tmp_path / node / "run"),
            "sessionTTL": ttl,
        }
    )


def intent(node: str, name: str, generation: int = 1, kind: str = "DPU", **kw: Any) -> Intent:
    return Intent(
        node=node,
        ref=ObjectRef(kind=kind, namespace=NS, name=name),
        uid=f"uid-{name}",
        generation=generation,
        spec=kw.pop("spec", {"dpuSetName": "set-a", "serialNumber": f"SN-{name}"}),
        **kw,
    )


async def put_intent(store: Store, it: Intent) -> int:
    return await store.put(keys.intent_key(it.node, it.ref), it.model_dump_json())


async def delete_intent(store: Store, node: str, ref: ObjectRef) -> bool:
    return await store.delete(keys.intent_key(node, ref))


async def get_json(store: Store, key: str) -> dict[str, Any] | None:
    kv = await store.get(key)
    if kv is None:
        return None
    value = json.loads(kv.value)
    assert isinstance(value, dict)
    return value


async def report(store: Store, node: str, ref: ObjectRef) -> dict[str, Any] | None:
    return await get_json(store, keys.report_key(node, ref))


async def wait_for(
    probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], within: float = 10.0, what: str = "condition"
) -> T:
    """Poll `probe` until `ok(value)`; fail with the last value seen after `within` seconds."""
    last: list[T] = []

    async def check() -> bool:
        last[:] = [await probe()]
        return ok(last[0])

    await eventually(check, within, what)
    return last[0]


async def wait_report(
    store: Store, node: str, ref: ObjectRef, ok: Callable[[dict[str, Any]], bool], within: float = 10.0
) -> dict[str, Any]:
    got = await wait_for(
        lambda: report(store, node, ref), lambda r: r is not None and ok(r), within, f"report of {ref.path()}"
    )
    assert got is not None
    return got


async def wait_report_gone(store: Store, node: str, ref: ObjectRef, within: float = 10.0) -> None:
    await wait_for(lambda: report(store, node, ref), lambda r: r is None, within, f"{ref.path()} report deleted")
