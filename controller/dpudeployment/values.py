"""Helm values of a generated DPUService: the DPUServiceConfiguration's merged over the DPUServiceTemplate's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dpfd.api.jsontree import copy_json


def merge_values(config: Mapping[str, Any] | None, template: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Deep merge: maps merge key by key, anything else (lists included) is taken from `config` when it has the
    key. None when neither has values (the DPUService then carries none)."""
    if config is None and template is None:
        return None
    out: dict[str, Any] = copy_json(dict(template or {}))
    for key, value in (config or {}).items():
        old = out.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            out[key] = merge_values(value, old)
        else:
            out[key] = copy_json(value)
    return out
