"""How values appear in validation messages: as JSON, the way the Kubernetes API server quotes them."""

from __future__ import annotations

import json
from typing import Any

_MAX = 80


def show(value: Any) -> str:
    """`"abc"`, `0`, `true`, `{"a":1}`: compact JSON, cut short when long."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= _MAX else text[: _MAX - 3] + "..."
