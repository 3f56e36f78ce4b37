"""Fixtures for the API tests: the realistic manifests in manifests/, one fresh copy per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpfd.api.yamldocs import load_documents

MANIFEST_DIR = Path(__file__).parent / "manifests"

Obj = dict[str, Any]


def load_manifests() -> dict[str, Obj]:
    """Every object in manifests/, keyed "Kind/name" (read as kubectl reads YAML: dates stay strings)."""
    out: dict[str, Obj] = {}
    for path in sorted(MANIFEST_DIR.glob("*.yaml")):
        docs, syntax = load_documents(path.read_text())
        assert syntax is None, f"{path}: {syntax}"
        for doc in docs:
            key = f"{doc.obj['kind']}/{doc.obj['metadata']['name']}"
            assert key not in out, f"duplicate manifest {key}"
            out[key] = doc.obj
    return out


@pytest.fixture
def manifests() -> dict[str, Obj]:
    """Fresh objects, so a test can change them freely."""
    return load_manifests()
