"""How the request names things: NamespacedName strings ("<namespace or default>/<name>") in its status,
metav1.Time timestamps and Go durations."""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.credentials.resources import DEFAULT_NAMESPACE
from controller.kube.objects import Obj, ObjKey
from dpfd.api.quantity import parse_duration


def ref_string(ref: Any) -> str | None:
    """NamespacedName.String(): "<namespace or default>/<name>", None when there is no reference."""
    if not isinstance(ref, dict) or not ref.get("name"):
        return None
    return f"{ref.get('namespace') or DEFAULT_NAMESPACE}/{ref['name']}"


def split_ref(text: str | None) -> ObjKey | None:
    if not text or "/" not in text:
        return None
    namespace, _, name = text.partition("/")
    return ObjKey(namespace, name)


def parse_time(text: Any) -> float | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def duration_seconds(spec: Obj) -> int | None:
    """spec.duration in whole seconds (Go's Duration / time.Second), None when not given."""
    text = spec.get("duration")
    if not text:
        return None
    return int(parse_duration(str(text)))
