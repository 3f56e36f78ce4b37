"""Synthetic BFB images for dpf-sim: deterministic bytes with a checksum trailer the emulated DMS verifies.

An image is `size` pseudo-random bytes derived from its name, followed by the trailer
`\\nDPFSIM-SHA256:<64 hex digits>\\n` holding the sha256 of those bytes. The same name and size always give the
same image, so a BFB server can serve any byte range without storing the file, and a corrupted transfer is
caught at install time (INTEGRITY_FAIL), as a real BlueField rejects a damaged bundle.
"""

from __future__ import annotations

import hashlib

TRAILER_PREFIX = b"\nDPFSIM-SHA256:"
TRAILER_LEN = len(TRAILER_PREFIX) + 64 + 1
_BLOCK = 1 << 16


def _block(name: str, index: int) -> bytes:
    # SHAKE-128 per 64 KiB block: any block can be produced on its own, so ranges are cheap to serve.
    return hashlib.shake_128(f"{name}:{index}".encode()).digest(_BLOCK)


def image_size(body_size: int) -> int:
    """Total size of an image whose body is `body_size` bytes."""
    return body_size + TRAILER_LEN


def body_range(name: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of the image body."""
    out = bytearray()
    pos = start
    while pos < end:
        index, offset = divmod(pos, _BLOCK)
        take = min(end - pos, _BLOCK - offset)
        out += _block(name, index)[offset : offset + take]
        pos += take
    return bytes(out)


def trailer(name: str, body_size: int) -> bytes:
    digest = hashlib.sha256()
    for start in range(0, body_size, _BLOCK):
        digest.update(body_range(name, start, min(body_size, start + _BLOCK)))
    return TRAILER_PREFIX + digest.hexdigest().encode() + b"\n"


def image_range(name: str, body_size: int, start: int, end: int, trailer_bytes: bytes | None = None) -> bytes:
    """Bytes [start, end) of the whole image (body and trailer). Pass `trailer_bytes` to avoid recomputing it."""
    end = min(end, image_size(body_size))
    out = body_range(name, start, min(end, body_size)) if start < body_size else b""
    if end > body_size:
        tail = trailer_bytes if trailer_bytes is not None else trailer(name, body_size)
        out += tail[max(0, start - body_size) : end - body_size]
    return out


def make_image(name: str, body_size: int) -> bytes:
    """The whole image in memory (for tests and small images)."""
    return body_range(name, 0, body_size) + trailer(name, body_size)


class ImageVerifier:
    """Checks an image as it streams in: feed chunks (bytes or memoryviews, not copied when large enough), then
    `ok()` says whether the trailer matches the body."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._tail = b""  # the last TRAILER_LEN bytes seen (fewer at the start), not yet known to be body
        self.size = 0

    def feed(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        self.size += len(view)
        if len(view) >= TRAILER_LEN:
            # Hash the held tail and the chunk's front in place; keep only the chunk's last TRAILER_LEN bytes.
            self._digest.update(self._tail)
            self._digest.update(view[:-TRAILER_LEN])
            self._tail = bytes(view[-TRAILER_LEN:])
            return
        data = self._tail + bytes(view)
        if len(data) > TRAILER_LEN:
            self._digest.update(data[:-TRAILER_LEN])
            data = data[-TRAILER_LEN:]
        self._tail = data

    def has_trailer(self) -> bool:
        tail = self._tail
        return len(tail) == TRAILER_LEN and tail.startswith(TRAILER_PREFIX) and tail.endswith(b"\n")

    @property
    def claimed_sha256(self) -> str:
        """The digest the trailer claims (empty without a trailer)."""
        return self._tail[len(TRAILER_PREFIX) : -1].decode(errors="replace") if self.has_trailer() else ""

    def ok(self) -> bool:
        return self.has_trailer() and self.claimed_sha256 == self._digest.hexdigest()
