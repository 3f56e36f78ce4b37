"""Gossip wire encoding: round trips, exact sizes for the packet packer, and strict decoding of hostile bytes."""

import contextlib
import random
from collections.abc import Callable
from typing import Any

import pytest

from dpfd.gossip.messages import Ack, IndirectPing, Nack, PacketMessage, Ping, PushNodeState, PushPull, StreamMessage
from dpfd.gossip.state import Alive, Dead, MemberState, Suspect
from dpfd.gossip.wire import (
    MAX_PUSH_PULL_STATES,
    MAX_U32,
    WireError,
    compound,
    decode_packet,
    decode_stream,
    encode_message,
    encode_packet,
    encode_stream,
    message_size,
    packet_overhead,
)

PACKET_MESSAGES: list[PacketMessage] = [
    Ping(1, "node-a", "node-b", "10.0.0.2:7946"),
    Ping(MAX_U32, "", "", ""),
    IndirectPing(7, "node-c", "10.0.0.3:7946", "node-b", "10.0.0.2:7946"),
    IndirectPing(0, "c", "a", "b", "d", nack=False),
    Ack(42),
    Ack(3, b"\x00\xff" * 100),
    Nack(9),
    Alive("node-a", 1, "10.0.0.1:7946", b"role=host"),
    Alive("nœud-é", MAX_U32),
    Suspect("node-a", 2, "node-b"),
    Dead("node-a", 3, "node-c"),
    Dead("node-a", 3, "node-a"),
]
PUSH_PULL = PushPull(
    join=True,
    states=(
        PushNodeState("node-a", "10.0.0.1:7946", b"m", 4, MemberState.ALIVE),
        PushNodeState("node-b", "10.0.0.2:7946", b"", 1, MemberState.SUSPECT),
        PushNodeState("node-c", "", b"x" * 300, 0, MemberState.DEAD),
        PushNodeState("ñ", "10.0.0.4:7946", b"", MAX_U32, MemberState.LEFT),
    ),
)
STREAM_MESSAGES: list[StreamMessage] = [
    Ping(5, "node-a", "node-b", "10.0.0.2:7946"),
    Ack(5, b"hello"),
    PUSH_PULL,
    PushPull(join=False, states=()),
]


def random_name(rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz-0123456789.:éñ中"
    return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))


def random_packet_message(rng: random.Random) -> PacketMessage:
    n = rng.randrange(7)
    u32 = rng.randrange(MAX_U32 + 1)
    if n == 0:
        return Ping(u32, random_name(rng), random_name(rng), random_name(rng))
    if n == 1:
        node, addr, source, source_addr = (random_name(rng) for _ in range(4))
        return IndirectPing(u32, node, addr, source, source_addr, nack=rng.random() < 0.5)
    if n == 2:
        return Ack(u32, rng.randbytes(rng.randrange(0, 50)))
    if n == 3:
        return Nack(u32)
    if n == 4:
        return Alive(random_name(rng), u32, random_name(rng), rng.randbytes(rng.randrange(0, 50)))
    if n == 5:
        return Suspect(random_name(rng), u32, random_name(rng))
    return Dead(random_name(rng), u32, random_name(rng))


@pytest.mark.parametrize("msg", PACKET_MESSAGES, ids=repr)
def test_each_packet_message_round_trips(msg: PacketMessage) -> None:
    assert decode_packet(encode_packet([msg])) == [msg]


@pytest.mark.parametrize("msg", STREAM_MESSAGES, ids=lambda m: type(m).__name__)
def test_each_stream_message_round_trips(msg: StreamMessage) -> None:
    data = encode_stream(msg)
    assert decode_stream(data) == msg
    assert message_size(msg) == len(data)


def test_compound_round_trips_in_order() -> None:
    assert decode_packet(encode_packet(PACKET_MESSAGES)) == PACKET_MESSAGES


def test_sizes_add_up_exactly_for_random_compounds() -> None:
    rng = random.Random(1)
    for _ in range(300):
        msgs = [random_packet_message(rng) for _ in range(rng.randrange(1, 30))]
        for m in msgs:
            assert message_size(m) == len(encode_message(m)), m
        data = encode_packet(msgs)
        assert sum(message_size(m) for m in msgs) + packet_overhead(len(msgs)) == len(data)
        assert decode_packet(data) == msgs


def test_compound_of_pre_encoded_messages_matches_encode_packet() -> None:
    assert compound([encode_message(m) for m in PACKET_MESSAGES]) == encode_packet(PACKET_MESSAGES)


def test_packet_count_limits() -> None:
    with pytest.raises(WireError, match=r"1\.\.255"):
        encode_packet([])
    with pytest.raises(WireError, match=r"1\.\.255"):
        encode_packet([Nack(1)] * 256)
    assert len(decode_packet(encode_packet([Nack(1)] * 255))) == 255
    with pytest.raises(WireError):
        packet_overhead(256)


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        (Ping(1, "x" * 256, "b", "c"), "Ping.node is 256 bytes"),
        (Alive("é" * 128, 1), "Alive.node is 256 bytes"),
        (Alive("a", 1, "", b"m" * 65_536), "Alive.meta is 65536 bytes"),
        (Ack(1, b"p" * 65_536), "Ack.payload is 65536 bytes"),
        (Nack(-1), "Nack.seq = -1 is outside u32"),
        (Suspect("a", MAX_U32 + 1, "b"), "Suspect.incarnation"),
        (Dead("\ud800", 1, "b"), "Dead.node is not encodable"),
    ],
)
def test_unencodable_messages_raise_wire_error(msg: PacketMessage, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        encode_message(msg)


def test_names_of_exactly_255_bytes_are_fine() -> None:
    msg = Alive("n" * 255, 1, "a" * 255)
    assert decode_packet(encode_packet([msg])) == [msg]


def test_messages_only_travel_where_they_belong() -> None:
    with pytest.raises(WireError, match="not a packet message"):
        encode_message(PUSH_PULL)  # type: ignore[arg-type]
    with pytest.raises(WireError, match="not a stream message"):
        encode_stream(Nack(1))  # type: ignore[arg-type]
    # a push-pull smuggled into a packet, and an alive into a stream
    with pytest.raises(WireError, match="not allowed in a packet"):
        decode_packet(b"\x01" + encode_stream(PUSH_PULL))
    with pytest.raises(WireError, match="not allowed in a stream"):
        decode_stream(encode_message(Alive("a", 1)))


def test_a_float_field_is_a_wire_error() -> None:
    with pytest.raises(WireError):
        encode_message(Nack(1.5))  # type: ignore[arg-type]


def valid_packets() -> list[bytes]:
    return [encode_packet([m]) for m in PACKET_MESSAGES] + [encode_packet(PACKET_MESSAGES)]


def valid_streams() -> list[bytes]:
    return [encode_stream(m) for m in STREAM_MESSAGES]


def test_every_truncation_of_every_valid_encoding_is_a_wire_error() -> None:
    for data in valid_packets():
        for cut in range(len(data)):
            with pytest.raises(WireError):
                decode_packet(data[:cut])
    for data in valid_streams():
        for cut in range(len(data)):
            with pytest.raises(WireError):
                decode_stream(data[:cut])


def test_trailing_garbage_is_a_wire_error() -> None:
    for data in valid_packets():
        with pytest.raises(WireError, match="trailing garbage"):
            decode_packet(data + b"\x00")
    for data in valid_streams():
        with pytest.raises(WireError, match="trailing garbage"):
            decode_stream(data + b"\x05")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty packet"),
        (b"\x00", "0 messages"),
        (b"\x01\x00\x00\x00\x00\x01", "unknown message type 0"),
        (b"\x01\xee", "unknown message type 238"),
        (b"\x02\x04\x00\x00\x00\x01", "declares 2 messages but ends after 1"),
        (b"\x01\x02\x00\x00\x00\x01\x02\x00\x00\x00\x00", "IndirectPing.nack at offset 6 is 2"),
        (b"\x01\x05\x00\x00\x00\x01\x02\xff\xfe\x00\x00\x00", "Alive.node at offset 7 is not valid UTF-8"),
        (b"\x01\x05\x00\x00\x00\x01\x02\xc0\xaf\x00\x00\x00", "not valid UTF-8"),  # overlong '/'
        (b"\x01\x03\x00\x00\x00\x01\x00\x09abc", "Ack.payload needs 9 bytes at offset 8, 3 left"),
        (b"\x01\x04\x00\x00", "Nack.seq needs 4 bytes at offset 2, 2 left"),
    ],
)
def test_malformed_packets_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(WireError, match=reason):
        decode_packet(data)


def test_push_pull_counts_are_bounded_before_allocating() -> None:
    huge = b"\x08\x00" + (MAX_PUSH_PULL_STATES + 1).to_bytes(4, "big")
    with pytest.raises(WireError, match="over the 65536 limit"):
        decode_stream(huge)
    # a count the remaining bytes cannot possibly hold is refused up front
    with pytest.raises(WireError, match=r"PushPull\.count 1000 needs at least 9000 bytes"):
        decode_stream(b"\x08\x00" + (1000).to_bytes(4, "big") + b"\x00" * 100)


def test_push_pull_bad_state_and_bool() -> None:
    entry = b"\x01a\x00\x00\x00" + b"\x00\x00\x00\x01"
    with pytest.raises(WireError, match=r"states\[0\].state at offset 15 is 4"):
        decode_stream(b"\x08\x01\x00\x00\x00\x01" + entry + b"\x04")
    with pytest.raises(WireError, match=r"PushPull\.join"):
        decode_stream(b"\x08\x07\x00\x00\x00\x00")


def test_random_bytes_only_ever_raise_wire_error() -> None:
    rng = random.Random(2)
    for _ in range(3000):
        data = rng.randbytes(rng.randrange(0, 64))
        for decode in (decode_packet, decode_stream):
            with contextlib.suppress(WireError):
                decode(data)


def test_mutated_encodings_decode_canonically_or_raise_wire_error() -> None:
    """Flip bytes of valid encodings: the result is refused, or decodes to messages encoding back to those bytes."""
    rng = random.Random(3)
    samples: list[tuple[bytes, Callable[[bytes], Any], Callable[[Any], bytes]]]
    samples = [(d, decode_packet, encode_packet) for d in valid_packets()]
    samples += [(d, decode_stream, encode_stream) for d in valid_streams()]
    decoded_some = 0
    for data, decode, encode in samples:
        for _ in range(200):
            mutated = bytearray(data)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            try:
                result = decode(bytes(mutated))
            except WireError:
                continue
            decoded_some += 1
            assert encode(result) == bytes(mutated)
    assert decoded_some > 100  # the property was exercised, not just the error path


def test_accepts_bytearray_and_memoryview() -> None:
    data = encode_packet(PACKET_MESSAGES)
    assert decode_packet(bytearray(data)) == PACKET_MESSAGES  # type: ignore[arg-type]
    assert decode_stream(memoryview(encode_stream(PUSH_PULL))) == PUSH_PULL  # type: ignore[arg-type]
