"""Authentication of every gossip packet and stream message: HMAC-SHA256 with key rotation and replay protection.

A sealed message is ``version:u8 | key id:4 | sender id:8 | counter:u64 | timestamp ms:u64 | payload | tag:16``,
where the tag is HMAC-SHA256 over everything before it, truncated to 16 bytes (RFC 4868). The key id (the first
4 bytes of sha256(key)) names the key, so verifying costs one HMAC however many keys are installed.

Rotation without downtime (memberlist's keyring): install the new key everywhere (``add``), make it primary
everywhere (``use``), then ``remove`` the old one. Every installed key verifies, only the primary signs.

Replay protection: each process seals with a random sender id and a counter that only grows; the receiver keeps
an RFC 4303-style sliding window per sender id and a packet whose timestamp is more than ``max_skew`` from its
own clock is refused. That makes forgetting a quiet sender safe: everything it sent before is now too old.
Replay is refused per receiver only: a packet recorded on its way to one member can be replayed once to another
(it carries no destination); the messages themselves name their target where that matters (a ping names the node).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import struct
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

KEY_SIZES = (16, 24, 32)
KEY_ID_SIZE = 4
SENDER_ID_SIZE = 8
TAG_SIZE = 16
VERSION = 1

_HEADER = struct.Struct(f">B{KEY_ID_SIZE}s{SENDER_ID_SIZE}sQQ")  # version, key id, sender id, counter, timestamp ms
SEAL_OVERHEAD = _HEADER.size + TAG_SIZE  # what sealing adds to a payload: 45 bytes
_MAX_U64 = 2**64 - 1

MAX_PACKET_SIZE = 65_507  # the largest UDP payload over IPv4
MAX_STREAM_SIZE = 4 * 1024 * 1024


class KeyringError(ValueError):
    """A key of the wrong size, or a keyring operation that would break it."""


def key_id(key: bytes) -> bytes:
    return hashlib.sha256(key).digest()[:KEY_ID_SIZE]


class Keyring:
    """The installed keys, primary first. Shared by a process's ``Sealer`` and ``Opener``, so rotation applies to both."""

    __slots__ = ("_by_id", "_keys", "_primary_id")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise KeyringError("a keyring needs at least one key")
        self._keys: list[bytes] = []
        self._by_id: dict[bytes, bytes] = {}
        for key in keys:
            self.add(key)
        self._primary_id = key_id(self._keys[0])

    @property
    def keys(self) -> tuple[bytes, ...]:
        return tuple(self._keys)

    @property
    def primary(self) -> bytes:
        return self._keys[0]

    @property
    def primary_id(self) -> bytes:
        return self._primary_id

    def lookup(self, kid: bytes) -> bytes | None:
        return self._by_id.get(kid)

    def add(self, key: bytes) -> None:
        """Install a key for verifying (a key already installed is left as it is)."""
        key = bytes(key)
        if len(key) not in KEY_SIZES:
            raise KeyringError(f"a key must be 16, 24 or 32 bytes, got {len(key)}")
        kid = key_id(key)
        installed = self._by_id.get(kid)
        if installed == key:
            return
        if installed is not None:
            raise KeyringError(f"key id {kid.hex()} collides with an installed key; generate another key")
        self._keys.append(key)
        self._by_id[kid] = key

    def use(self, key: bytes) -> None:
        """Make an installed key the primary, the one that signs."""
        key = bytes(key)
        if key not in self._keys:
            raise KeyringError(f"key {key_id(key).hex()} is not installed; add it first")
        self._keys.remove(key)
        self._keys.insert(0, key)
        self._primary_id = key_id(key)

    def remove(self, key: bytes) -> None:
        key = bytes(key)
        if key == self._keys[0]:
            raise KeyringError("refusing to remove the primary key; use another key first")
        if key not in self._keys:
            raise KeyringError(f"key {key_id(key).hex()} is not installed")
        self._keys.remove(key)
        del self._by_id[key_id(key)]


def _to_ms(wall: float) -> int:
    return int(wall * 1000)


class Sealer:
    """Signs outgoing payloads with the primary key. One per process: the counter must never repeat for a sender id,
    so a restarted process takes a fresh random id rather than resuming a counter."""

    __slots__ = ("_counter", "keyring", "sender_id")

    def __init__(self, keyring: Keyring, sender_id: bytes | None = None) -> None:
        if sender_id is None:
            sender_id = secrets.token_bytes(SENDER_ID_SIZE)
        if len(sender_id) != SENDER_ID_SIZE:
            raise KeyringError(f"a sender id is {SENDER_ID_SIZE} bytes, got {len(sender_id)}")
        self.keyring = keyring
        self.sender_id = bytes(sender_id)
        self._counter = 0

    @property
    def counter(self) -> int:
        """The counter of the last sealed message."""
        return self._counter

    def seal(self, payload: bytes, wall: float) -> bytes:
        if self._counter >= _MAX_U64:
            raise KeyringError("sender counter exhausted; start a new Sealer (a new sender id)")
        timestamp = _to_ms(wall)
        if not 0 <= timestamp <= _MAX_U64:
            raise KeyringError(f"wall clock {wall} is outside the timestamp range")
        self._counter += 1
        keyring = self.keyring
        body = _HEADER.pack(VERSION, keyring.primary_id, self.sender_id, self._counter, timestamp) + payload
        return body + hmac.digest(keyring.primary, body, "sha256")[:TAG_SIZE]


# --- receiving ------------------------------------------------------------------------------------------------------


class PacketRejected(Exception):
    """A sealed message that was refused; ``stat`` names the ``PacketStats`` counter it counts in."""

    stat = ""


class Forged(PacketRejected):
    stat = "forged"


class Replayed(PacketRejected):
    stat = "replayed"


class Oversized(PacketRejected):
    stat = "oversized"


class Malformed(PacketRejected):
    stat = "malformed"


class Skewed(PacketRejected):
    stat = "skewed"


@dataclass(slots=True)
class PacketStats:
    accepted: int = 0
    forged: int = 0
    replayed: int = 0
    oversized: int = 0
    malformed: int = 0
    skewed: int = 0


@dataclass(slots=True)
class _Window:
    """What one sender has had accepted: bit i of ``seen`` is counter ``top - i``."""

    top: int
    seen: int
    newest_ms: int  # highest timestamp accepted: once it is max_skew old, every packet from before is Skewed
    floor_ms: int  # packets stamped at or below this are refused (see Opener._evict)


class Opener:
    """Verifies sealed messages and returns their payloads; one per process, for packets and streams alike, so a
    counter is accepted once whichever way it arrives.

    ``window`` is larger than RFC 4303's 64 because a sender's counter is shared by all its destinations: we see
    a sparse subsequence of it, and a packet overtaken by ``window`` later ones (to anyone) is refused."""

    def __init__(
        self,
        keyring: Keyring,
        *,
        max_packet_size: int = MAX_PACKET_SIZE,
        max_stream_size: int = MAX_STREAM_SIZE,
        max_skew: float = 60.0,
        window: int = 1024,
        max_senders: int = 4096,
    ) -> None:
        if window < 1 or max_senders < 1 or max_skew <= 0:
            raise ValueError("window and max_senders must be >= 1 and max_skew > 0")
        self.keyring = keyring
        self.max_packet_size = max_packet_size
        self.max_stream_size = max_stream_size
        self.max_skew = max_skew
        self.window = window
        self.max_senders = max_senders
        self.stats = PacketStats()
        self._skew_ms = _to_ms(max_skew)
        self._mask = (1 << window) - 1
        self._senders: OrderedDict[bytes, _Window] = OrderedDict()  # least recently accepted first
        self._evicted_ms = -1  # newest timestamp of any sender evicted for room before it went quiet

    @property
    def tracked_senders(self) -> int:
        return len(self._senders)

    def open(self, data: bytes, wall: float, *, max_size: int | None = None) -> bytes:
        """The payload of a sealed packet (at most ``max_packet_size`` unless ``max_size`` says otherwise), or
        ``PacketRejected``, counted in ``stats``."""
        try:
            payload = self._open(data, wall, self.max_packet_size if max_size is None else max_size)
        except PacketRejected as e:
            setattr(self.stats, e.stat, getattr(self.stats, e.stat) + 1)
            raise
        self.stats.accepted += 1
        return payload

    def open_stream(self, data: bytes, wall: float) -> bytes:
        return self.open(data, wall, max_size=self.max_stream_size)

    def _open(self, data: bytes, wall: float, max_size: int) -> bytes:
        if len(data) > max_size:
            raise Oversized(f"{len(data)} bytes, over the {max_size}-byte limit")
        if len(data) < SEAL_OVERHEAD:
            raise Malformed(f"{len(data)} bytes, shorter than the {SEAL_OVERHEAD}-byte sealed header and tag")
        version, kid, sender, counter, timestamp = _HEADER.unpack_from(data)
        if version != VERSION:
            raise Malformed(f"unknown seal version {version} (we speak {VERSION})")
        key = self.keyring.lookup(kid)
        if key is None:
            raise Forged(f"unknown key id {kid.hex()}")
        body = data[:-TAG_SIZE]
        if not hmac.compare_digest(hmac.digest(key, body, "sha256")[:TAG_SIZE], data[-TAG_SIZE:]):
            raise Forged(f"bad tag under key id {kid.hex()}")
        # authentic from here on: only now may the packet touch the replay state
        wall_ms = _to_ms(wall)
        if abs(timestamp - wall_ms) > self._skew_ms:
            raise Skewed(f"timestamp {(timestamp - wall_ms) / 1000:+.3f}s from our clock, beyond {self.max_skew:g}s")
        self._check_replay(sender, counter, timestamp, wall_ms)
        return body[_HEADER.size :]

    def _check_replay(self, sender: bytes, counter: int, timestamp: int, wall_ms: int) -> None:
        self._forget_quiet(wall_ms)
        w = self._senders.get(sender)
        if w is None:
            if timestamp <= self._evicted_ms:
                raise Replayed(f"sender {sender.hex()} unknown and packet not newer than an evicted sender's")
            self._senders[sender] = _Window(counter, 1, timestamp, self._evicted_ms)
            if len(self._senders) > self.max_senders:
                self._evict()
            return
        if timestamp <= w.floor_ms:
            raise Replayed(f"sender {sender.hex()} packet not newer than an evicted sender's")
        if counter > w.top:
            shift = counter - w.top
            w.seen = ((w.seen << shift) | 1) & self._mask if shift < self.window else 1
            w.top = counter
        else:
            behind = w.top - counter
            if behind >= self.window:
                raise Replayed(f"counter {counter} is {behind} behind {w.top}, outside the {self.window} window")
            bit = 1 << behind
            if w.seen & bit:
                raise Replayed(f"counter {counter} from sender {sender.hex()} already accepted")
            w.seen |= bit
        if timestamp > w.newest_ms:
            w.newest_ms = timestamp
        self._senders.move_to_end(sender)

    def _forget_quiet(self, wall_ms: int) -> None:
        """Drop senders whose newest accepted packet is beyond max_skew: replays of them are Skewed anyway."""
        senders = self._senders
        while senders:
            oldest = next(iter(senders.values()))
            if wall_ms - oldest.newest_ms <= self._skew_ms:
                return
            senders.popitem(last=False)

    def _evict(self) -> None:
        """Make room by dropping the least recently seen sender. Its packets may still be within max_skew, so from
        now on an unknown sender's packets must be stamped after the newest of them: a replay of an evicted sender
        is then refused, and a real newcomer (stamped now) is not."""
        _, evicted = self._senders.popitem(last=False)
        self._evicted_ms = max(self._evicted_ms, evicted.newest_ms)
