"""Chunked reads of an install source without holding it in memory or blocking the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

# Chunks are read in batches in a worker thread (one thread hop per batch, not per chunk), and the next
# batch is read while the current one is being sent.
BATCH_BYTES = 4 << 20


def _read_batch(f: BinaryIO, chunk_size: int, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        chunk = f.read(chunk_size)  # each read returns its own bytes object: no slicing copy later
        if not chunk:
            break
        out.append(chunk)
    return out


async def file_chunks(path: Path, chunk_size: int) -> AsyncIterator[bytes]:
    """The file's bytes in chunks of `chunk_size` (the last may be shorter). Close it with `aclosing`."""
    count = max(1, BATCH_BYTES // chunk_size)
    f: BinaryIO = await asyncio.to_thread(open, path, "rb")
    pending: asyncio.Future[list[bytes]] | None = None
    try:
        pending = asyncio.ensure_future(asyncio.to_thread(_read_batch, f, chunk_size, count))
        while pending is not None:
            batch = await pending
            pending = None
            if len(batch) == count and len(batch[-1]) == chunk_size:
                pending = asyncio.ensure_future(asyncio.to_thread(_read_batch, f, chunk_size, count))
            for chunk in batch:
                yield chunk
    finally:
        if pending is not None:
            # Let the in-flight read finish before closing the file under it.
            await asyncio.wait([pending])
        await asyncio.to_thread(f.close)


async def bytes_chunks(data: bytes, chunk_size: int) -> AsyncIterator[bytes]:
    """`data` in chunks of `chunk_size`."""
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        yield bytes(view[start : start + chunk_size])
