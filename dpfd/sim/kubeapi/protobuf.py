"""Decode the protobuf request bodies kubectl's typed commands send (`kubectl create namespace|configmap|
secret|serviceaccount|poddisruptionbudget|token`): client-go does not fall back to JSON when the server refuses
protobuf.

Only these kinds are decoded; field numbers are those of k8s.io/api core/v1, policy/v1 and authentication/v1,
and apimachinery meta/v1 and util/intstr generated.proto. Responses are always JSON (kubectl accepts it).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

PROTOBUF = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

Obj = dict[str, Any]
# field number -> (JSON name, how to decode); "msg" entries name a schema in _SCHEMAS
_Schema = dict[int, tuple[str, str]]


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        yield number, value


_SCHEMAS: dict[str, _Schema] = {
    "ObjectMeta": {
        1: ("name", "string"),
        2: ("generateName", "string"),
        3: ("namespace", "string"),
        5: ("uid", "string"),
        6: ("resourceVersion", "string"),
        11: ("labels", "map_string"),
        12: ("annotations", "map_string"),
        13: ("ownerReferences", "repeated:OwnerReference"),
        14: ("finalizers", "repeated_string"),
    },
    "OwnerReference": {
        1: ("kind", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
        6: ("controller", "bool"),
        7: ("blockOwnerDeletion", "bool"),
    },
    "ObjectReference": {
        1: ("kind", "string"),
        2: ("namespace", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
        5: ("apiVersion", "string"),
    },
    "LocalObjectReference": {1: ("name", "string")},
    "LabelSelector": {1: ("matchLabels", "map_string"), 2: ("matchExpressions", "repeated:LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: ("key", "string"), 2: ("operator", "string"), 3: ("values", "repeated_string")},
    "Namespace": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "repeated_string")},
    "ConfigMap": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("data", "map_string"),
        3: ("binaryData", "map_bytes"),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("data", "map_bytes"),
        3: ("type", "string"),
        4: ("stringData", "map_string"),
        5: ("immutable", "bool"),
    },
    "ServiceAccount": {
        1: ("metadata", "msg:ObjectMeta"),
        2: ("secrets", "repeated:ObjectReference"),
        3: ("imagePullSecrets", "repeated:LocalObjectReference"),
        4: ("automountServiceAccountToken", "bool"),
    },
    "PodDisruptionBudget": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:PodDisruptionBudgetSpec")},
    "PodDisruptionBudgetSpec": {
        1: ("minAvailable", "intorstring"),
        2: ("selector", "msg:LabelSelector"),
        3: ("maxUnavailable", "intorstring"),
        4: ("unhealthyPodEvictionPolicy", "string"),
    },
    "TokenRequest": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:TokenRequestSpec")},
    "TokenRequestSpec": {
        1: ("audiences", "repeated_string"),
        3: ("boundObjectRef", "msg:BoundObjectReference"),
        4: ("expirationSeconds", "int"),
    },
    "BoundObjectReference": {
        1: ("kind", "string"),
        2: ("apiVersion", "string"),
        3: ("name", "string"),
        4: ("uid", "string"),
    },
}
DECODABLE_KINDS = frozenset(
    {"Namespace", "ConfigMap", "Secret", "ServiceAccount", "PodDisruptionBudget", "TokenRequest"}
)


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise ProtobufError("expected a length-delimited field")
    return value


def _map_entry(value: int | bytes) -> tuple[str, bytes]:
    key, val = "", b""
    for n, v in _fields(_bytes(value)):
        if n == 1:
            key = _bytes(v).decode()
        elif n == 2:
            val = _bytes(v)
    return key, val


def _int_or_string(value: int | bytes) -> int | str:
    """intstr.IntOrString: type (0 int, 1 string), intVal, strVal."""
    kind, number, text = 0, 0, ""
    for n, v in _fields(_bytes(value)):
        if n == 1 and isinstance(v, int):
            kind = v
        elif n == 2 and isinstance(v, int):
            number = v - (1 << 64) if v >= 1 << 63 else v  # a negative int32 travels as a 64-bit varint
        elif n == 3:
            text = _bytes(v).decode()
    return text if kind == 1 else number


def _message(buf: bytes, schema_name: str) -> Obj:
    schema = _SCHEMAS[schema_name]
    out: Obj = {}
    for number, value in _fields(buf):
        if number not in schema:
            continue  # server-managed or unknown fields
        name, how = schema[number]
        if how == "string":
            if text := _bytes(value).decode():
                out[name] = text
        elif how == "bool":
            if value:
                out[name] = True
        elif how == "repeated_string":
            out.setdefault(name, []).append(_bytes(value).decode())
        elif how in ("map_string", "map_bytes"):
            k, v = _map_entry(value)
            out.setdefault(name, {})[k] = v.decode() if how == "map_string" else base64.b64encode(v).decode()
        elif how == "int":
            if isinstance(value, int):
                out[name] = value - (1 << 64) if value >= 1 << 63 else value
        elif how == "intorstring":
            out[name] = _int_or_string(value)
        elif how.startswith("msg:"):
            out[name] = _message(_bytes(value), how[4:])
        elif how.startswith("repeated:"):
            out.setdefault(name, []).append(_message(_bytes(value), how[9:]))
    return out


def decode(body: bytes) -> Obj:
    """The JSON form of a protobuf-encoded object (runtime.Unknown envelope); ProtobufError otherwise."""
    if not body.startswith(_MAGIC):
        raise ProtobufError("missing the k8s protobuf envelope")
    api_version = kind = ""
    raw = b""
    for number, value in _fields(body[len(_MAGIC) :]):
        if number == 1:
            for n, v in _fields(_bytes(value)):
                if n == 1:
                    api_version = _bytes(v).decode()
                elif n == 2:
                    kind = _bytes(v).decode()
        elif number == 2:
            raw = _bytes(value)
    if kind not in DECODABLE_KINDS:
        raise ProtobufError(f"protobuf bodies of kind {kind!r} are not supported; send JSON")
    return {"apiVersion": api_version, "kind": kind, **_message(raw, kind)}
