"""How dpfctl prints: tables for people, JSON and YAML for scripts, and the times and sizes inside them."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import yaml
from google.protobuf.descriptor import FieldDescriptor  # type: ignore[import-untyped]
from google.protobuf.message import Message  # type: ignore[import-untyped]

FORMATS = ("table", "json", "yaml")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, three spaces apart; trailing blanks trimmed."""
    grid = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in grid) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in grid)


def dump(data: Any, output: str) -> str:
    """``data`` (plain dicts and lists) as JSON or YAML."""
    if output == "yaml":
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip("\n")
    return json.dumps(data, indent=2)


def proto_dict(msg: Message) -> dict[str, Any]:
    """A message as a dict with the proto's field names and every field present (numbers stay numbers, unlike
    proto3's JSON mapping, which quotes 64-bit integers)."""
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            out[field.name] = dict(value)
        elif _repeated(field):
            out[field.name] = [proto_dict(v) if isinstance(v, Message) else v for v in value]
        elif field.message_type is not None:
            out[field.name] = proto_dict(value) if msg.HasField(field.name) else None
        else:
            out[field.name] = value
    return out


def _repeated(field: FieldDescriptor) -> bool:
    flag = getattr(field, "is_repeated", None)  # protobuf 6+; `label` before
    return bool(flag) if flag is not None else bool(field.label == FieldDescriptor.LABEL_REPEATED)


def age(since: float, now: float | None = None) -> str:
    """How long ago, in the largest unit: 42s, 5m, 3h, 2d; empty when unknown."""
    if since <= 0:
        return ""
    seconds = max(0, int((time.time() if now is None else now) - since))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def clock(at: float) -> str:
    """A wall-clock time, local, to the second; empty when unknown."""
    if at <= 0:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # not reached


def bar(done: int, total: int, width: int = 20) -> str:
    """``[#######-------------]  35%``; without a total, just the bytes."""
    if total <= 0:
        return size(done)
    share = min(1.0, done / total)
    filled = int(share * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {share * 100:3.0f}% {size(done)}/{size(total)}"
