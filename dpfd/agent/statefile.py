"""State files that are never half-written: write a temp file, (fsync,) rename, (fsync the directory).

`durable=False` keeps the never-half-written guarantee (rename is atomic) but skips the fsyncs, for files that
only cache what etcd holds: after a power loss such a file may be an older version, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def write_atomic(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    # Plain os calls on str paths: a small cache file is written for every intent change, and pathlib and
    # file objects cost more than the write itself.
    path = os.fspath(path)
    parent, name = os.path.split(path)
    tmp = os.path.join(parent, f".{name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, _WRITE_FLAGS, 0o600)
    except FileNotFoundError:  # the first file in this directory
        os.makedirs(parent or ".", exist_ok=True)
        fd = os.open(tmp, _WRITE_FLAGS, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(parent or ".")


def read_file(path: str | Path) -> bytes:
    """The whole file (raises FileNotFoundError); cheaper than Path.read_bytes for small files."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks: list[bytes] = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def remove_durably(path: str | Path, *, durable: bool = True) -> bool:
    """Remove `path` if present (and make the removal durable); True if it was there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    if durable:
        fsync_dir(os.path.dirname(os.fspath(path)) or ".")
    return True


def fsync_dir(d: str | Path) -> None:
    # The rename or unlink is only durable once the directory entry is on disk.
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
