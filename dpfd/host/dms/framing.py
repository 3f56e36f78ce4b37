"""OS.Install content messages framed by hand: the same wire bytes as protobuf, with one copy instead of two.

`InstallRequest{transfer_content: chunk}` is field 2, wire type 2 (length-delimited): tag byte 0x12, the length
as a varint, then the bytes. Building the message and serializing it would copy each chunk twice.
"""

from __future__ import annotations

from typing import Any

from dpfd.proto.gnoi.os import os_pb2

CONTENT_TAG = b"\x12"
INSTALL_METHOD = f"/{os_pb2.DESCRIPTOR.services_by_name['OS'].full_name}/Install"


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def frame_content(chunk: bytes) -> bytes:
    """The serialized `InstallRequest(transfer_content=chunk)`."""
    return b"".join((CONTENT_TAG, _varint(len(chunk)), chunk))


def serialize_install_request(req: Any) -> bytes:
    """Request serializer for OS.Install: pre-framed bytes pass through, messages are serialized."""
    if isinstance(req, bytes):
        return req
    return bytes(req.SerializeToString())


def _read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return -1, pos


def parse_install_request(data: bytes) -> os_pb2.InstallRequest | memoryview:
    """Request deserializer for OS.Install: a message that is exactly one transfer_content field comes back as a
    zero-copy memoryview of the content; anything else is parsed as an InstallRequest."""
    if data[:1] == CONTENT_TAG:
        length, start = _read_varint(data, 1)
        if start + length == len(data):
            return memoryview(data)[start:]
    msg = os_pb2.InstallRequest()
    msg.ParseFromString(data)
    return msg
