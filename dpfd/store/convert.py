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
    return KeyValue(
        key=key_str(kv.key),
        value=bytes(kv.value),
        create_revision=int(kv.create_revision),
        mod_revision=int(kv.mod_revision),
        version=int(kv.version),
        lease=int(kv.lease),
    )


def op_to_pb(op: Op) -> Any:
    if isinstance(op, Put):
        return rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key_bytes(op.key), value=op.value, lease=op.lease))
    if isinstance(op, Delete):
        key = key_bytes(op.key)
        end = prefix_range_end(key) if op.prefix else b""
        return rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key, range_end=end))
    raise TypeError(f"not a store operation: {op!r} (expected Put or Delete)")


def compare_to_pb(c: Compare) -> Any:
    msg = rpc_pb2.Compare(result=_RESULT[c.op], target=_TARGET[c.target], key=key_bytes(c.key))
    setattr(msg, c.target, c.operand)  # the oneof field is named like the target
    return msg


def txn_request(compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]) -> Any:
    return rpc_pb2.TxnRequest(
        compare=[compare_to_pb(c) for c in compares],
        success=[op_to_pb(o) for o in success],
        failure=[op_to_pb(o) for o in failure],
    )


def events_from_pb(events: Any) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    for ev in events:
        kv = kv_from_pb(ev.kv)
        deleted = ev.type == kv_pb2.Event.DELETE
        out.append(WatchEvent(type="DELETE" if deleted else "PUT", revision=kv.mod_revision, kv=kv))
    return out
