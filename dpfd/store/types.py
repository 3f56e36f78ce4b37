"""Plain values the store API takes and returns: keys and values, write operations, compares, events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# etcd's default --max-txn-ops: the most operations one transaction may carry.
MAX_TXN_OPS = 128


def encode(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)


def prefix_range_end(prefix: bytes) -> bytes:
    """The range_end that makes [prefix, range_end) cover every key starting with prefix."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # empty prefix or all 0xff: to the end of the keyspace


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@dataclass(frozen=True, init=False)
class Put:
    """Set key to value (bytes, or str which is stored as UTF-8), optionally bound to a lease."""

    key: str
    value: bytes
    lease: int = 0

    def __init__(self, key: str, value: bytes | str, lease: int = 0) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "value", encode(value))
        object.__setattr__(self, "lease", lease)


@dataclass(frozen=True)
class Delete:
    """Delete key, or every key starting with it when prefix is True."""

    key: str
    prefix: bool = False


Op = Put | Delete

CompareOp = Literal["=", "!=", "<", ">"]
CompareTarget = Literal["version", "create_revision", "mod_revision", "value"]
COMPARE_OPS: tuple[str, ...] = ("=", "!=", "<", ">")


@dataclass(frozen=True)
class Compare:
    """One condition of a transaction: `<target of key> <op> <value>`."""

    key: str
    target: CompareTarget
    op: str
    operand: int | bytes  # not "value": that name is the constructor below

    def __post_init__(self) -> None:
        if self.op not in COMPARE_OPS:
            raise ValueError(f"Compare on {self.key!r}: op {self.op!r} is not one of {', '.join(COMPARE_OPS)}")
        if (self.target == "value") != isinstance(self.operand, bytes):
            kind = "bytes" if self.target == "value" else "int"
            raise ValueError(f"Compare on {self.key!r}: {self.target} needs {kind}, got {self.operand!r}")

    @staticmethod
    def create_revision(key: str, op: str, value: int) -> Compare:
        """create_revision == 0 means the key does not exist."""
        return Compare(key, "create_revision", op, value)

    @staticmethod
    def mod_revision(key: str, op: str, value: int) -> Compare:
        return Compare(key, "mod_revision", op, value)

    @staticmethod
    def version(key: str, op: str, value: int) -> Compare:
        return Compare(key, "version", op, value)

    @staticmethod
    def value(key: str, op: str, value: bytes | str) -> Compare:
        return Compare(key, "value", op, encode(value))


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    revision: int


@dataclass(frozen=True)
class WatchEvent:
    """PUT: kv is the new key-value. DELETE: kv carries the key and the deleting revision (value b"").
    RESET: snapshot is the whole state of the watched range at `revision`; replace your view with it."""

    type: Literal["PUT", "DELETE", "RESET"]
    revision: int
    kv: KeyValue | None = None
    snapshot: tuple[KeyValue, ...] = ()


@dataclass
class StoreStats:
    """Successful requests since connect; txn_ops counts the operations carried by those txns."""

    ranges: int = 0
    puts: int = 0
    deletes: int = 0
    txns: int = 0
    txn_ops: int = 0
    watch_events: int = 0
    lease_ops: int = 0
    reconnects: int = 0  # endpoint switches and stream re-opens
