"""Compact binary encoding of gossip messages (the job of memberlist's ``net.go`` encoders, with our own layout).

A packet (datagram) is ``count:u8`` followed by ``count`` messages (1..255); a stream carries exactly one message.
Every message starts with its type byte, and each field after it has a fixed size or a length prefix, so messages
delimit themselves and a compound needs no per-message lengths: ``len(encode_packet(msgs)) ==
packet_overhead(len(msgs)) + sum(message_size(m) for m in msgs)``, exactly.

Fields, big-endian:

* str: u8 length + UTF-8 (at most 255 bytes); bytes: u16 length + bytes (at most 65,535)
* seq: u32; incarnation: u32, as in memberlist (a member raises it once per refutation, 2**32 is plenty)
* MemberState: u8 (alive 0, suspect 1, dead 2, left 3: memberlist's values); bool: u8, 0 or 1

Messages (type byte, then fields in this order):

* 1 Ping: seq, node, source, source_addr
* 2 IndirectPing: seq, nack, node, addr, source, source_addr
* 3 Ack: seq, payload; 4 Nack: seq
* 5 Alive: incarnation, node, addr, meta; 6 Suspect and 7 Dead: incarnation, node, from
* 8 PushPull (streams only): join, count:u32, then per member: name, addr, meta, incarnation, state

Decoding takes untrusted bytes: anything malformed raises ``WireError`` with the reason and offset, counts are
bounded before anything is allocated for them, and the encoding is canonical (a decoded message re-encodes to the
bytes it came from), so nothing an attacker sends can mean two things.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

from dpfd.gossip.messages import (
    Ack,
    IndirectPing,
    Nack,
    PacketMessage,
    Ping,
    PushNodeState,
    PushPull,
    StreamMessage,
)
from dpfd.gossip.state import Alive, Dead, MemberState, Suspect


class WireError(ValueError):
    """Bytes that are not a valid encoding, or a message that cannot be encoded."""


PING, INDIRECT_PING, ACK, NACK, ALIVE, SUSPECT, DEAD, PUSH_PULL = range(1, 9)

MAX_STR = 0xFF
MAX_BYTES = 0xFFFF
MAX_U32 = 0xFFFF_FFFF
MAX_PACKET_MESSAGES = 0xFF
# A push-pull carries the whole membership; far above any cluster we run, far below what would hurt to allocate.
MAX_PUSH_PULL_STATES = 65_536
PACKET_HEADER = 1  # the count byte

_STATE_CODES = {MemberState.ALIVE: 0, MemberState.SUSPECT: 1, MemberState.DEAD: 2, MemberState.LEFT: 3}
_STATES = {code: state for state, code in _STATE_CODES.items()}

_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_TYPE_U32 = struct.Struct(">BI")  # type + seq or incarnation
_TYPE_U32_BOOL = struct.Struct(">BIB")  # IndirectPing: type + seq + nack
_PUSH_PULL_HEAD = struct.Struct(">BBI")  # type + join + count
_NODE_TAIL = struct.Struct(">IB")  # push-pull entry: incarnation + state
_MIN_NODE_SIZE = 1 + 1 + 2 + _NODE_TAIL.size  # empty name, addr and meta


# --- encoding -------------------------------------------------------------------------------------------------------


def _u32(value: int, what: str) -> int:
    if not 0 <= value <= MAX_U32:
        raise WireError(f"{what} = {value} is outside u32 range 0..{MAX_U32}")
    return value


def _str(value: str, what: str) -> bytes:
    try:
        raw = value.encode()
    except UnicodeEncodeError as e:
        raise WireError(f"{what} is not encodable as UTF-8: {e.reason}") from None
    if len(raw) > MAX_STR:
        raise WireError(f"{what} is {len(raw)} bytes of UTF-8, over the {MAX_STR}-byte limit")
    return bytes((len(raw),)) + raw


def _bytes(value: bytes, what: str) -> bytes:
    if len(value) > MAX_BYTES:
        raise WireError(f"{what} is {len(value)} bytes, over the {MAX_BYTES}-byte limit")
    return _U16.pack(len(value)) + value


def _enc_ping(m: Ping) -> bytes:
    return b"".join(
        (
            _TYPE_U32.pack(PING, _u32(m.seq, "Ping.seq")),
            _str(m.node, "Ping.node"),
            _str(m.source, "Ping.source"),
            _str(m.source_addr, "Ping.source_addr"),
        )
    )


def _enc_indirect_ping(m: IndirectPing) -> bytes:
    return b"".join(
        (
            _TYPE_U32_BOOL.pack(INDIRECT_PING, _u32(m.seq, "IndirectPing.seq"), 1 if m.nack else 0),
            _str(m.node, "IndirectPing.node"),
            _str(m.addr, "IndirectPing.addr"),
            _str(m.source, "IndirectPing.source"),
            _str(m.source_addr, "IndirectPing.source_addr"),
        )
    )


def _enc_ack(m: Ack) -> bytes:
    return _TYPE_U32.pack(ACK, _u32(m.seq, "Ack.seq")) + _bytes(m.payload, "Ack.payload")


def _enc_nack(m: Nack) -> bytes:
    return _TYPE_U32.pack(NACK, _u32(m.seq, "Nack.seq"))


def _enc_alive(m: Alive) -> bytes:
    return b"".join(
        (
            _TYPE_U32.pack(ALIVE, _u32(m.incarnation, "Alive.incarnation")),
            _str(m.node, "Alive.node"),
            _str(m.addr, "Alive.addr"),
            _bytes(m.meta, "Alive.meta"),
        )
    )


def _enc_suspect(m: Suspect) -> bytes:
    return b"".join(
        (
            _TYPE_U32.pack(SUSPECT, _u32(m.incarnation, "Suspect.incarnation")),
            _str(m.node, "Suspect.node"),
            _str(m.from_, "Suspect.from_"),
        )
    )


def _enc_dead(m: Dead) -> bytes:
    return b"".join(
        (
            _TYPE_U32.pack(DEAD, _u32(m.incarnation, "Dead.incarnation")),
            _str(m.node, "Dead.node"),
            _str(m.from_, "Dead.from_"),
        )
    )


def _enc_push_pull(m: PushPull) -> bytes:
    if len(m.states) > MAX_PUSH_PULL_STATES:
        raise WireError(f"PushPull carries {len(m.states)} states, over the {MAX_PUSH_PULL_STATES} limit")
    parts = [_PUSH_PULL_HEAD.pack(PUSH_PULL, 1 if m.join else 0, len(m.states))]
    for s in m.states:
        parts.append(_str(s.name, "PushNodeState.name"))
        parts.append(_str(s.addr, "PushNodeState.addr"))
        parts.append(_bytes(s.meta, "PushNodeState.meta"))
        code = _STATE_CODES.get(s.state)
        if code is None:
            raise WireError(f"PushNodeState.state {s.state!r} is not a MemberState")
        parts.append(_NODE_TAIL.pack(_u32(s.incarnation, "PushNodeState.incarnation"), code))
    return b"".join(parts)


_ENCODERS: dict[type, Callable[[Any], bytes]] = {
    Ping: _enc_ping,
    IndirectPing: _enc_indirect_ping,
    Ack: _enc_ack,
    Nack: _enc_nack,
    Alive: _enc_alive,
    Suspect: _enc_suspect,
    Dead: _enc_dead,
    PushPull: _enc_push_pull,
}
_PACKET_TYPES = frozenset((Ping, IndirectPing, Ack, Nack, Alive, Suspect, Dead))
_STREAM_TYPES = frozenset((Ping, Ack, PushPull))


def _encode(msg: object) -> bytes:
    encoder = _ENCODERS.get(type(msg))
    if encoder is None:
        raise WireError(f"cannot encode {type(msg).__name__}: not a gossip message")
    try:
        return encoder(msg)
    except struct.error as e:  # a field of the wrong type (a float seq, say)
        raise WireError(f"cannot encode {type(msg).__name__}: {e}") from None


def encode_message(msg: PacketMessage) -> bytes:
    """One packet message, as it appears inside a compound (``compound`` packs these)."""
    if type(msg) not in _PACKET_TYPES:
        raise WireError(f"{type(msg).__name__} is not a packet message")
    return _encode(msg)


def compound(encoded: Sequence[bytes]) -> bytes:
    """A packet from messages already encoded by ``encode_message`` (a broadcast queue keeps them encoded)."""
    if not 1 <= len(encoded) <= MAX_PACKET_MESSAGES:
        raise WireError(f"a packet holds 1..{MAX_PACKET_MESSAGES} messages, got {len(encoded)}")
    return bytes((len(encoded),)) + b"".join(encoded)


def encode_packet(msgs: Sequence[PacketMessage]) -> bytes:
    return compound([encode_message(m) for m in msgs])


def packet_overhead(count: int) -> int:
    """Bytes a packet of ``count`` messages adds around them (0 is allowed so a packer can ask before adding any)."""
    if not 0 <= count <= MAX_PACKET_MESSAGES:
        raise WireError(f"a packet holds 1..{MAX_PACKET_MESSAGES} messages, got {count}")
    return PACKET_HEADER


def encode_stream(msg: StreamMessage) -> bytes:
    if type(msg) not in _STREAM_TYPES:
        raise WireError(f"{type(msg).__name__} is not a stream message")
    return _encode(msg)


# --- sizes, without encoding (the broadcast packer asks for every queued message) -----------------------------------


def _slen(value: str) -> int:
    if value.isascii():
        return 1 + len(value)
    try:
        return 1 + len(value.encode())
    except UnicodeEncodeError as e:
        raise WireError(f"string is not encodable as UTF-8: {e.reason}") from None


def message_size(msg: PacketMessage | StreamMessage) -> int:
    """Exact length of ``encode_message(msg)`` (or ``encode_stream``). Limits are checked only when encoding."""
    if isinstance(msg, Alive):
        return 5 + _slen(msg.node) + _slen(msg.addr) + 2 + len(msg.meta)
    if isinstance(msg, Suspect | Dead):
        return 5 + _slen(msg.node) + _slen(msg.from_)
    if isinstance(msg, Ping):
        return 5 + _slen(msg.node) + _slen(msg.source) + _slen(msg.source_addr)
    if isinstance(msg, IndirectPing):
        return 6 + _slen(msg.node) + _slen(msg.addr) + _slen(msg.source) + _slen(msg.source_addr)
    if isinstance(msg, Ack):
        return 7 + len(msg.payload)
    if isinstance(msg, Nack):
        return 5
    if isinstance(msg, PushPull):
        return _PUSH_PULL_HEAD.size + sum(
            _slen(s.name) + _slen(s.addr) + 2 + len(s.meta) + _NODE_TAIL.size for s in msg.states
        )
    raise WireError(f"cannot size {type(msg).__name__}: not a gossip message")


# --- decoding -------------------------------------------------------------------------------------------------------


def _truncated(what: str, need: int, data: bytes, pos: int) -> WireError:
    return WireError(f"truncated: {what} needs {need} bytes at offset {pos}, {max(0, len(data) - pos)} left")


def _read_u32(data: bytes, pos: int, what: str) -> tuple[int, int]:
    if pos + 4 > len(data):
        raise _truncated(what, 4, data, pos)
    return _U32.unpack_from(data, pos)[0], pos + 4


def _read_bool(data: bytes, pos: int, what: str) -> tuple[bool, int]:
    if pos >= len(data):
        raise _truncated(what, 1, data, pos)
    value = data[pos]
    if value > 1:
        raise WireError(f"{what} at offset {pos} is {value}, a bool must be 0 or 1")
    return value == 1, pos + 1


def _read_str(data: bytes, pos: int, what: str) -> tuple[str, int]:
    if pos >= len(data):
        raise _truncated(f"{what} length", 1, data, pos)
    end = pos + 1 + data[pos]
    if end > len(data):
        raise _truncated(what, data[pos], data, pos + 1)
    try:
        return data[pos + 1 : end].decode(), end
    except UnicodeDecodeError as e:
        raise WireError(f"{what} at offset {pos + 1} is not valid UTF-8: {e.reason}") from None


def _read_bytes(data: bytes, pos: int, what: str) -> tuple[bytes, int]:
    if pos + 2 > len(data):
        raise _truncated(f"{what} length", 2, data, pos)
    size = _U16.unpack_from(data, pos)[0]
    end = pos + 2 + size
    if end > len(data):
        raise _truncated(what, size, data, pos + 2)
    return data[pos + 2 : end], end


def _dec_ping(data: bytes, pos: int) -> tuple[Ping, int]:
    seq, pos = _read_u32(data, pos, "Ping.seq")
    node, pos = _read_str(data, pos, "Ping.node")
    source, pos = _read_str(data, pos, "Ping.source")
    source_addr, pos = _read_str(data, pos, "Ping.source_addr")
    return Ping(seq, node, source, source_addr), pos


def _dec_indirect_ping(data: bytes, pos: int) -> tuple[IndirectPing, int]:
    seq, pos = _read_u32(data, pos, "IndirectPing.seq")
    nack, pos = _read_bool(data, pos, "IndirectPing.nack")
    node, pos = _read_str(data, pos, "IndirectPing.node")
    addr, pos = _read_str(data, pos, "IndirectPing.addr")
    source, pos = _read_str(data, pos, "IndirectPing.source")
    source_addr, pos = _read_str(data, pos, "IndirectPing.source_addr")
    return IndirectPing(seq, node, addr, source, source_addr, nack), pos


def _dec_ack(data: bytes, pos: int) -> tuple[Ack, int]:
    seq, pos = _read_u32(data, pos, "Ack.seq")
    payload, pos = _read_bytes(data, pos, "Ack.payload")
    return Ack(seq, payload), pos


def _dec_nack(data: bytes, pos: int) -> tuple[Nack, int]:
    seq, pos = _read_u32(data, pos, "Nack.seq")
    return Nack(seq), pos


def _dec_alive(data: bytes, pos: int) -> tuple[Alive, int]:
    incarnation, pos = _read_u32(data, pos, "Alive.incarnation")
    node, pos = _read_str(data, pos, "Alive.node")
    addr, pos = _read_str(data, pos, "Alive.addr")
    meta, pos = _read_bytes(data, pos, "Alive.meta")
    return Alive(node, incarnation, addr, meta), pos


def _dec_suspect(data: bytes, pos: int) -> tuple[Suspect, int]:
    incarnation, pos = _read_u32(data, pos, "Suspect.incarnation")
    node, pos = _read_str(data, pos, "Suspect.node")
    from_, pos = _read_str(data, pos, "Suspect.from_")
    return Suspect(node, incarnation, from_), pos


def _dec_dead(data: bytes, pos: int) -> tuple[Dead, int]:
    incarnation, pos = _read_u32(data, pos, "Dead.incarnation")
    node, pos = _read_str(data, pos, "Dead.node")
    from_, pos = _read_str(data, pos, "Dead.from_")
    return Dead(node, incarnation, from_), pos


def _dec_push_pull(data: bytes, pos: int) -> tuple[PushPull, int]:
    join, pos = _read_bool(data, pos, "PushPull.join")
    count, pos = _read_u32(data, pos, "PushPull.count")
    if count > MAX_PUSH_PULL_STATES:
        raise WireError(f"PushPull.count {count} is over the {MAX_PUSH_PULL_STATES} limit")
    if count * _MIN_NODE_SIZE > len(data) - pos:
        raise WireError(
            f"truncated: PushPull.count {count} needs at least {count * _MIN_NODE_SIZE} bytes at offset {pos}, {len(data) - pos} left"
        )
    states = []
    for i in range(count):
        what = f"PushPull.states[{i}]"
        name, pos = _read_str(data, pos, f"{what}.name")
        addr, pos = _read_str(data, pos, f"{what}.addr")
        meta, pos = _read_bytes(data, pos, f"{what}.meta")
        if pos + _NODE_TAIL.size > len(data):
            raise _truncated(f"{what}.incarnation and state", _NODE_TAIL.size, data, pos)
        incarnation, code = _NODE_TAIL.unpack_from(data, pos)
        state = _STATES.get(code)
        if state is None:
            raise WireError(f"{what}.state at offset {pos + 4} is {code}, not a member state (0..3)")
        pos += _NODE_TAIL.size
        states.append(PushNodeState(name, addr, meta, incarnation, state))
    return PushPull(join, tuple(states)), pos


_PACKET_DECODERS: dict[int, Callable[[bytes, int], tuple[PacketMessage, int]]] = {
    PING: _dec_ping,
    INDIRECT_PING: _dec_indirect_ping,
    ACK: _dec_ack,
    NACK: _dec_nack,
    ALIVE: _dec_alive,
    SUSPECT: _dec_suspect,
    DEAD: _dec_dead,
}
_STREAM_DECODERS: dict[int, Callable[[bytes, int], tuple[StreamMessage, int]]] = {
    PING: _dec_ping,
    ACK: _dec_ack,
    PUSH_PULL: _dec_push_pull,
}


def _unknown(code: int, pos: int, where: str) -> WireError:
    if code in _PACKET_DECODERS or code in _STREAM_DECODERS:
        return WireError(f"message type {code} at offset {pos} is not allowed in a {where}")
    return WireError(f"unknown message type {code} at offset {pos}")


def decode_packet(data: bytes) -> list[PacketMessage]:
    if type(data) is not bytes:
        data = bytes(data)
    if not data:
        raise WireError("empty packet")
    count = data[0]
    if count == 0:
        raise WireError("packet declares 0 messages")
    pos = PACKET_HEADER
    msgs: list[PacketMessage] = []
    for i in range(count):
        if pos >= len(data):
            raise WireError(f"truncated: packet declares {count} messages but ends after {i}")
        decoder = _PACKET_DECODERS.get(data[pos])
        if decoder is None:
            raise _unknown(data[pos], pos, "packet")
        msg, pos = decoder(data, pos + 1)
        msgs.append(msg)
    if pos != len(data):
        raise WireError(f"{len(data) - pos} bytes of trailing garbage at offset {pos} after {count} messages")
    return msgs


def decode_stream(data: bytes) -> StreamMessage:
    if type(data) is not bytes:
        data = bytes(data)
    if not data:
        raise WireError("empty stream message")
    decoder = _STREAM_DECODERS.get(data[0])
    if decoder is None:
        raise _unknown(data[0], 0, "stream")
    msg, pos = decoder(data, 1)
    if pos != len(data):
        raise WireError(f"{len(data) - pos} bytes of trailing garbage at offset {pos} after the stream message")
    return msg
