"""Between the store's values and etcd's protobuf messages (aetcd ships the generated etcd stubs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aetcd.rpc import kv_pb2, rpc_pb2

from dpfd.store.types import Compare, Delete, KeyValue, Op, Put, WatchEvent, prefix_range_end

_RESULT = {
    "=": rpc_pb2.Compare.EQUAL,
    "!=": rpc_pb2.Compare.NOT_EQUAL,
    "<": rpc_pb2.Compare.LESS,
    ">": rpc_pb2.Compare.GREATER,
}
_TARGET = {
    "version": rpc_pb2.Compare.VERSION,
    "create_revision": rpc_pb2.Compare.CREATE,
    "mod_revision": rpc_pb2.Compare.MOD,
    "value": rpc_pb2.Compare.VALUE,
}


def key_bytes(key: str) -> bytes:
    # surrogateescape round-trips keys that other writers stored as non-UTF-8 bytes
    return key.encode("utf-8", "surrogateescape")


def key_str(key: bytes) -> str:
    return key.decode("utf-8", "surrogateescape")


def kv_from_pb(kv: Any) -> KeyValue:
    # protobuf already gives int and bytes: no conversions needed (this runs for every watched change)
    return KeyValue(
        key=key_str(kv.key),
        value=kv.value,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        lease=kv.lease,
    )


def add_ops(field: Any, ops: Sequence[Op]) -> None:
    """Append ops to a repeated RequestOp field. Filling the messages in place is several times cheaper than
    building each one and having protobuf copy it in (this runs for every op of every commit)."""
    add = field.add
    for op in ops:
        _fill_op(add(), op)


def _fill_op(msg: Any, op: Op) -> None:
    # Assigning a field marks the oneof member as set, even when the value is the default.
    if isinstance(op, Put):
        put = msg.request_put
        put.key = key_bytes(op.key)
        put.value = op.value
        put.lease = op.lease
    elif isinstance(op, Delete):
        delete = msg.request_delete_range
        key = key_bytes(op.key)
        delete.key = key
        delete.range_end = prefix_range_end(key) if op.prefix else b""
    else:
        raise TypeError(f"not a store operation: {op!r} (expected Put or Delete)")


def compare_to_pb(c: Compare) -> Any:
    msg = rpc_pb2.Compare(result=_RESULT[c.op], target=_TARGET[c.target], key=key_bytes(c.key))
    setattr(msg, c.target, c.operand)  # the oneof field is named like the target
    return msg


def txn_request(compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> Any:
    req = rpc_pb2.TxnRequest(compare=[compare_to_pb(c) for c in compares])
    add_ops(req.success, success)
    add_ops(req.failure, failure)
    return req


_DELETE = kv_pb2.Event.DELETE


def events_from_pb(events: Any) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    for ev in events:
        kv = kv_from_pb(ev.kv)
        out.append(WatchEvent("DELETE" if ev.type == _DELETE else "PUT", kv.mod_revision, kv))
    return out
