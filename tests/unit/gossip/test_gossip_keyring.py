"""Gossip packet authentication: keyring rules, rotation without downtime, tampering, replay, skew and size limits."""

import hashlib
import hmac
import struct

import pytest

from dpfd.gossip.keyring import (
    SEAL_OVERHEAD,
    Forged,
    Keyring,
    KeyringError,
    Malformed,
    Opener,
    Oversized,
    PacketStats,
    Replayed,
    Sealer,
    Skewed,
)

OLD = b"o" * 16
NEW = b"n" * 32
OTHER = b"x" * 24
NOW = 1_700_000_000.0


def raw_seal(key: bytes, sender: bytes, counter: int, timestamp_ms: int, payload: bytes) -> bytes:
    """The documented layout, built independently of ``Sealer``."""
    kid = hashlib.sha256(key).digest()[:4]
    body = struct.pack(">B4s8sQQ", 1, kid, sender, counter, timestamp_ms) + payload
    return body + hmac.new(key, body, "sha256").digest()[:16]


# --- keyring ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 15, 17, 23, 31, 33, 64])
def test_keys_must_be_aes_sized(size: int) -> None:
    with pytest.raises(KeyringError, match="16, 24 or 32 bytes"):
        Keyring([b"k" * size])


def test_keyring_needs_a_key_and_keeps_primary_first() -> None:
    with pytest.raises(KeyringError, match="at least one key"):
        Keyring([])
    ring = Keyring([OLD, NEW, OLD])
    assert ring.keys == (OLD, NEW) and ring.primary == OLD
    ring.add(OTHER)
    ring.add(NEW)  # already installed: nothing changes
    assert list(ring.keys) == [OLD, NEW, OTHER]
    ring.use(OTHER)
    assert list(ring.keys) == [OTHER, OLD, NEW] and ring.primary_id == hashlib.sha256(OTHER).digest()[:4]


def test_keyring_refuses_unsafe_operations() -> None:
    ring = Keyring([OLD, NEW])
    with pytest.raises(KeyringError, match="primary"):
        ring.remove(OLD)
    with pytest.raises(KeyringError, match="not installed"):
        ring.use(OTHER)
    with pytest.raises(KeyringError, match="not installed"):
        ring.remove(OTHER)
    ring.remove(NEW)
    assert ring.keys == (OLD,)


def test_sender_ids_are_random_and_eight_bytes() -> None:
    ring = Keyring([OLD])
    assert Sealer(ring).sender_id != Sealer(ring).sender_id
    with pytest.raises(KeyringError, match="8 bytes"):
        Sealer(ring, sender_id=b"short")


# --- sealing and opening ----------------------------------------------------------------------------------------


def test_round_trip_and_layout() -> None:
    ring = Keyring([OLD])
    sealer, opener = Sealer(ring, sender_id=b"S" * 8), Opener(ring)
    sealed = sealer.seal(b"payload", NOW)
    assert len(sealed) == len(b"payload") + SEAL_OVERHEAD == 7 + 45
    assert sealed == raw_seal(OLD, b"S" * 8, 1, int(NOW * 1000), b"payload")
    assert opener.open(sealed, NOW) == b"payload"
    assert opener.open(sealer.seal(b"", NOW), NOW) == b""
    assert opener.stats == PacketStats(accepted=2)


def test_every_flipped_byte_is_forged_or_malformed_and_leaves_replay_state_alone() -> None:
    ring = Keyring([OLD])
    sealer, opener = Sealer(ring), Opener(ring)
    sealed = sealer.seal(b"gossip", NOW)
    for i in range(len(sealed)):
        for flip in (0x01, 0x80, 0xFF):
            tampered = bytearray(sealed)
            tampered[i] ^= flip
            expected = Malformed if i == 0 else Forged  # byte 0 is the version
            with pytest.raises(expected):
                opener.open(bytes(tampered), NOW)
    assert opener.stats.malformed == 3 and opener.stats.forged == 3 * (len(sealed) - 1)
    # none of them touched the replay window: the genuine packet still opens, once
    assert opener.tracked_senders == 0
    assert opener.open(sealed, NOW) == b"gossip"


def test_truncated_and_extended_packets_are_refused() -> None:
    ring = Keyring([OLD])
    opener = Opener(ring)
    sealed = Sealer(ring).seal(b"gossip", NOW)
    for cut in range(len(sealed)):
        with pytest.raises(Malformed if cut < SEAL_OVERHEAD else Forged):
            opener.open(sealed[:cut], NOW)
    with pytest.raises(Forged, match="bad tag"):
        opener.open(sealed + b"\x00", NOW)


def test_unknown_key_is_forged() -> None:
    sealed = Sealer(Keyring([OTHER])).seal(b"hi", NOW)
    with pytest.raises(Forged, match="unknown key id"):
        Opener(Keyring([OLD])).open(sealed, NOW)


def test_replay_of_the_same_packet_is_refused() -> None:
    ring = Keyring([OLD])
    sealer, opener = Sealer(ring), Opener(ring)
    sealed = sealer.seal(b"alive", NOW)
    opener.open(sealed, NOW)
    with pytest.raises(Replayed, match="already accepted"):
        opener.open(sealed, NOW + 1)
    # the same counter through the stream path is the same replay
    with pytest.raises(Replayed):
        opener.open_stream(sealed, NOW + 1)
    assert opener.stats == PacketStats(accepted=1, replayed=2)


def test_out_of_order_within_the_window_is_accepted_once() -> None:
    ring = Keyring([OLD])
    sealer, opener = Sealer(ring), Opener(ring, window=64)
    packets = [sealer.seal(bytes([i]), NOW) for i in range(10)]
    for i in (9, 3, 0, 5, 4, 8, 1, 2, 7, 6):
        assert opener.open(packets[i], NOW) == bytes([i])
    for p in packets:
        with pytest.raises(Replayed):
            opener.open(p, NOW)
    assert opener.stats.accepted == 10 and opener.stats.replayed == 10


def test_packets_older_than_the_window_are_refused() -> None:
    ring = Keyring([OLD])
    sealer, opener = Sealer(ring), Opener(ring, window=64)
    packets = [sealer.seal(b"", NOW) for _ in range(70)]  # counters 1..70
    opener.open(packets[-1], NOW)
    with pytest.raises(Replayed, match="outside the 64 window"):
        opener.open(packets[5], NOW)  # counter 6 is 64 behind 70
    opener.open(packets[6], NOW)  # counter 7 is 63 behind: still inside


def test_default_window_tolerates_a_packet_overtaken_by_a_thousand() -> None:
    ring = Keyring([OLD])
    sealer, opener = Sealer(ring), Opener(ring)
    late = sealer.seal(b"late", NOW)
    for _ in range(1000):
        opener.open(sealer.seal(b"", NOW), NOW)
    assert opener.open(late, NOW) == b"late"


def test_a_huge_counter_jump_resets_the_window_cheaply() -> None:
    ring = Keyring([OLD])
    opener = Opener(ring)
    opener.open(raw_seal(OLD, b"J" * 8, 1, int(NOW * 1000), b""), NOW)
    opener.open(raw_seal(OLD, b"J" * 8, 2**63, int(NOW * 1000), b""), NOW)
    with pytest.raises(Replayed, match="outside the 1024 window"):
        opener.open(raw_seal(OLD, b"J" * 8, 2, int(NOW * 1000), b""), NOW)


def test_timestamps_beyond_max_skew_are_skewed() -> None:
    ring = Keyring([OLD])
    sealer, opener = Sealer(ring), Opener(ring, max_skew=60.0)
    assert opener.open(sealer.seal(b"a", NOW - 60.0), NOW) == b"a"
    assert opener.open(sealer.seal(b"b", NOW + 60.0), NOW) == b"b"
    with pytest.raises(Skewed, match=r"-60\.00\ds"):
        opener.open(sealer.seal(b"c", NOW - 60.001), NOW)
    with pytest.raises(Skewed, match=r"\+61.000s"):
        opener.open(sealer.seal(b"d", NOW + 61), NOW)
    assert opener.stats == PacketStats(accepted=2, skewed=2)


def test_size_limits_differ_for_packets_and_streams() -> None:
    ring = Keyring([OLD])
    sealer, opener = Sealer(ring), Opener(ring, max_packet_size=1000, max_stream_size=5000)
    at_limit = sealer.seal(b"p" * (1000 - SEAL_OVERHEAD), NOW)
    assert len(opener.open(at_limit, NOW)) == 1000 - SEAL_OVERHEAD
    big = sealer.seal(b"p" * 2000, NOW)
    with pytest.raises(Oversized, match="2045 bytes, over the 1000-byte limit"):
        opener.open(big, NOW)
    assert opener.open_stream(big, NOW) == b"p" * 2000
    with pytest.raises(Oversized):
        opener.open_stream(sealer.seal(b"p" * 5000, NOW), NOW)
    assert opener.open(sealer.seal(b"p" * 10, NOW), NOW, max_size=56) == b"p" * 10
    assert opener.stats == PacketStats(accepted=3, oversized=2)


def test_default_limits_are_udp_max_and_four_mib() -> None:
    opener = Opener(Keyring([OLD]))
    assert opener.max_packet_size == 65_507 and opener.max_stream_size == 4 * 1024 * 1024
    with pytest.raises(Oversized):
        opener.open(b"\x00" * 65_508, NOW)
    with pytest.raises(Malformed):
        opener.open(b"\x00" * 65_507, NOW)  # within the size limit, so the next check speaks


def test_key_rotation_without_downtime() -> None:
    ring_a, ring_b = Keyring([OLD]), Keyring([OLD])
    a, b = Sealer(ring_a), Sealer(ring_b)
    open_a, open_b = Opener(ring_a), Opener(ring_b)
    before = a.seal(b"from a under OLD", NOW)
    # 1. install NEW everywhere; 2. A switches first: A signs with NEW, B still signs with OLD
    ring_a.add(NEW)
    ring_b.add(NEW)
    ring_a.use(NEW)
    assert open_b.open(a.seal(b"a:new", NOW), NOW) == b"a:new"
    assert open_a.open(b.seal(b"b:old", NOW), NOW) == b"b:old"
    ring_b.use(NEW)
    assert open_a.open(b.seal(b"b:new", NOW), NOW) == b"b:new"
    # 3. remove OLD everywhere: what OLD signed no longer verifies, even fresh and never seen
    ring_a.remove(OLD)
    ring_b.remove(OLD)
    with pytest.raises(Forged, match="unknown key id"):
        open_b.open(before, NOW)
    with pytest.raises(Forged):
        open_b.open(Sealer(Keyring([OLD])).seal(b"old-only member", NOW), NOW)
    assert open_b.open(a.seal(b"still talking", NOW), NOW) == b"still talking"


def test_quiet_senders_are_forgotten_and_their_replays_are_skewed() -> None:
    ring = Keyring([OLD])
    opener = Opener(ring, max_skew=60.0)
    quiet = Sealer(ring)
    old_packet = quiet.seal(b"q", NOW)
    opener.open(old_packet, NOW)
    assert opener.tracked_senders == 1
    opener.open(Sealer(ring).seal(b"other", NOW + 61), NOW + 61)
    assert opener.tracked_senders == 1  # the quiet one went, the new one stays
    with pytest.raises(Skewed):
        opener.open(old_packet, NOW + 61)


def test_tracked_senders_are_bounded_and_evicted_replays_still_refused() -> None:
    ring = Keyring([OLD])
    opener = Opener(ring, max_senders=3)
    first = Sealer(ring)
    early = first.seal(b"early", NOW)
    opener.open(early, NOW)
    first_late = first.seal(b"late", NOW)  # sealed but not yet delivered
    for i in range(10):
        opener.open(Sealer(ring).seal(b"x", NOW + 1 + i), NOW + 1 + i)
        assert opener.tracked_senders <= 3
    # the first sender was evicted while its packets are still within max_skew: neither replays
    # nor its stale-but-unseen packets get through; its fresh packets do
    with pytest.raises(Replayed, match="evicted"):
        opener.open(early, NOW + 11)
    with pytest.raises(Replayed, match="evicted"):
        opener.open(first_late, NOW + 11)
    assert opener.open(first.seal(b"fresh", NOW + 12), NOW + 12) == b"fresh"
    with pytest.raises(Replayed, match="evicted"):
        opener.open(early, NOW + 12)  # re-admitted, but its window still refuses what predates the eviction
    # a newcomer stamped after the evictions is welcome
    assert opener.open(Sealer(ring).seal(b"new", NOW + 13), NOW + 13) == b"new"
    assert opener.tracked_senders == 3


def test_stats_count_every_outcome() -> None:
    ring = Keyring([OLD])
    sealer, opener = Sealer(ring), Opener(ring, max_packet_size=200)
    good = sealer.seal(b"ok", NOW)
    outcomes = [
        (good, None),
        (good, Replayed),
        (b"\x02" + good[1:], Malformed),
        (good[:-1] + bytes([good[-1] ^ 1]), Forged),
        (sealer.seal(b"late", NOW - 600), Skewed),
        (sealer.seal(b"x" * 300, NOW), Oversized),
    ]
    for data, rejection in outcomes:
        if rejection is None:
            opener.open(data, NOW)
        else:
            with pytest.raises(rejection):
                opener.open(data, NOW)
    assert opener.stats == PacketStats(accepted=1, forged=1, replayed=1, oversized=1, malformed=1, skewed=1)
