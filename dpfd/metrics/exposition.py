"""Prometheus text exposition format 0.0.4: HELP and TYPE lines, then the samples of each family."""

from __future__ import annotations

import math
from collections.abc import Iterable

from dpfd.metrics.registry import Family, Registry

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def render_families(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for f in families:
        lines.append(f"# HELP {f.name} {escape_help(f.help)}")
        lines.append(f"# TYPE {f.name} {f.type}")
        for s in f.samples:
            if s.labels:
                labels = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in s.labels)
                lines.append(f"{s.name}{{{labels}}} {format_value(s.value)}")
            else:
                lines.append(f"{s.name} {format_value(s.value)}")
    return "\n".join(lines) + "\n" if lines else ""


def render(*registries: Registry) -> str:
    """What GET /metrics answers: every family of these registries, sorted by name."""
    families = [f for r in registries for f in r.collect()]
    families.sort(key=lambda f: f.name)
    return render_families(families)
