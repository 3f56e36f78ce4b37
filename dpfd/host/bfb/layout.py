"""Where the BFB cache keeps its files, and the small JSON records next to them.

    <root>/partial/<url-key>        bytes of a download in progress (kept across failures, to resume)
    <root>/partial/<url-key>.json   the URL and the validators (ETag, Last-Modified) those bytes came with
    <root>/sha256/<digest>          finished images, content-addressed (two URLs with the same bytes share one)
    <root>/urls/<url-key>.json      index: URL -> digest, size, validators

`<url-key>` is the sha256 of the URL, so any URL gives a safe file name.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dpfd.agent.statefile import read_file, remove_durably, write_atomic

log = logging.getLogger(__name__)


def url_key(url: str) -> str:
    """The file-name key of a URL."""
    return hashlib.sha256(url.encode()).hexdigest()


@dataclass(frozen=True)
class IndexEntry:
    """A finished download: which image a URL gave."""

    url: str
    sha256: str
    size: int
    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class PartialMeta:
    """What the bytes of an unfinished download are: resuming sends these validators in If-Range."""

    url: str
    etag: str | None
    last_modified: str | None
    total: int | None

    @property
    def validator(self) -> str | None:
        return self.etag if self.etag and not self.etag.startswith("W/") else self.last_modified


def _load(path: Path, cls: type[Any]) -> Any:
    try:
        raw = json.loads(read_file(path))
        return cls(**raw)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as e:  # a damaged record is treated as absent, and rewritten later
        log.warning("ignoring unreadable BFB cache record %s: %s", path, e)
        return None


class CacheLayout:
    """Paths and records under one cache root. Methods raise OSError; callers turn it into DiskError."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = self.root / "sha256"
        self.partials = self.root / "partial"
        self.urls = self.root / "urls"

    def ensure(self) -> None:
        for d in (self.blobs, self.partials, self.urls):
            d.mkdir(parents=True, exist_ok=True)

    def blob(self, digest: str) -> Path:
        return self.blobs / digest

    def partial(self, key: str) -> Path:
        return self.partials / key

    def partial_meta_path(self, key: str) -> Path:
        return self.partials / f"{key}.json"

    def index_path(self, key: str) -> Path:
        return self.urls / f"{key}.json"

    def read_index(self, key: str) -> IndexEntry | None:
        entry: IndexEntry | None = _load(self.index_path(key), IndexEntry)
        return entry

    def write_index(self, entry: IndexEntry) -> None:
        data = json.dumps(asdict(entry), indent=2, sort_keys=True) + "\n"
        write_atomic(self.index_path(url_key(entry.url)), data.encode())

    def remove_index(self, key: str) -> bool:
        return remove_durably(self.index_path(key))

    def read_partial_meta(self, key: str) -> PartialMeta | None:
        meta: PartialMeta | None = _load(self.partial_meta_path(key), PartialMeta)
        return meta

    def write_partial_meta(self, key: str, meta: PartialMeta) -> None:
        # Not fsynced: if it is lost, the partial bytes are dropped and the download starts over.
        data = json.dumps(asdict(meta), sort_keys=True).encode()
        write_atomic(self.partial_meta_path(key), data, durable=False)

    def remove_partial(self, key: str) -> None:
        for path in (self.partial(key), self.partial_meta_path(key)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def index_entries(self) -> list[IndexEntry]:
        out: list[IndexEntry] = []
        with contextlib.suppress(FileNotFoundError):
            for path in self.urls.glob("*.json"):
                entry = _load(path, IndexEntry)
                if entry is not None:
                    out.append(entry)
        return out

    def blob_digests(self) -> set[str]:
        with contextlib.suppress(FileNotFoundError):
            return {p.name for p in self.blobs.iterdir()}
        return set()
