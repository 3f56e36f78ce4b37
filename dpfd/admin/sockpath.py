"""Unix socket paths longer than the 107 bytes `sun_path` can hold (dpf-sim's state directories easily are).

Linux resolves `/proc/self/fd/N/` to the directory that descriptor N holds open, so a socket in a deep directory is
bound or reached as `/proc/self/fd/N/<name>`, a short path, while the descriptor stays open. Server and client
each do this on their own; the socket file itself is in the real directory, where everyone else finds it.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_UNIX_PATH = 107  # sun_path holds 108 bytes, the last one a NUL


class SocketPath:
    """A usable name for the unix socket at ``path``: the path itself when it fits, else a /proc/self/fd/ one.

    The directory must exist. Keep the object (and close it) for as long as the name is used."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._dirfd: int | None = None
        if len(os.fsencode(self.path)) <= MAX_UNIX_PATH:
            self.name = str(self.path)
            return
        self._dirfd = os.open(self.path.parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.name = f"/proc/self/fd/{self._dirfd}/{self.path.name}"
        if len(os.fsencode(self.name)) > MAX_UNIX_PATH:
            self.close()
            raise ValueError(f"{self.path}: the socket's file name alone is too long for a unix socket")

    @property
    def shortened(self) -> bool:
        return self._dirfd is not None

    def close(self) -> None:
        if self._dirfd is not None:
            os.close(self._dirfd)
            self._dirfd = None

    def __enter__(self) -> SocketPath:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
