"""Structured logs: one line per event, `key=value` pairs, naming the object as `DPU ns/name`.

A line logged while an object is reconciled (in the reconcile's task, or a task it started) carries
`object="DPU ns/name"` even when its code did not say which object it is about: the agent sets `reconciling`.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Iterator
from typing import Any

from dpfd.api.intents import ObjectRef

# The object being reconciled in this task (as obj() names it), for log lines that do not name one themselves.
_current_object: contextvars.ContextVar[str | None] = contextvars.ContextVar("dpf_log_object", default=None)


def obj(ref: ObjectRef) -> str:
    """How logs name an object: `DPU ns/name`."""
    return f"{ref.kind} {ref.namespace}/{ref.name}"


@contextlib.contextmanager
def reconciling(ref: ObjectRef) -> Iterator[None]:
    """Log lines inside (and in tasks started inside) carry object=<ref> unless they name an object themselves."""
    token = _current_object.set(obj(ref))
    try:
        yield
    finally:
        _current_object.reset(token)


class CurrentObjectFilter(logging.Filter):
    """Adds `object` to plain log records made while an object is reconciled (EventLog lines add it themselves)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "object") and not getattr(record, "_event_line", False):
            current = _current_object.get()
            if current is not None:
                record.object = current
        return True


def _fmt_value(v: Any) -> str:
    s = str(v)
    if s == "" or any(c in s for c in ' "=\n\t'):
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return s


def kv(event: str, **fields: Any) -> str:
    """`event=NAME k=v ...`; None values are left out."""
    parts = [f"event={event}"]
    parts += [f"{k}={_fmt_value(v)}" for k, v in fields.items() if v is not None]
    return " ".join(parts)


class EventLog:
    """A logger that adds fixed fields (e.g. node=) to every event line."""

    def __init__(self, logger: logging.Logger, **fixed: Any) -> None:
        self._logger = logger
        self._fixed = fixed

    def _emit(self, level: int, event: str, fields: dict[str, Any], exc_info: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            if "object" not in fields and "object" not in self._fixed:
                current = _current_object.get()
                if current is not None:
                    fields = {**fields, "object": current}
            line = kv(event, **self._fixed, **fields)
            self._logger.log(level, "%s", line, exc_info=exc_info, extra={"_event_line": True})

    def debug(self, event: str, **fields: Any) -> None:
        self._emit(logging.DEBUG, event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._emit(logging.INFO, event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit(logging.WARNING, event, fields)

    def error(self, event: str, exc_info: bool = False, **fields: Any) -> None:
        self._emit(logging.ERROR, event, fields, exc_info=exc_info)


# What every LogRecord carries; anything else on a record came from `extra=` and is logged as key=value.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """`ts=... level=... logger=... <message>`, with `extra=` fields as key=value and a traceback folded onto
    the same line."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        msg = record.getMessage()
        if not msg.startswith("event="):
            msg = f"event=log msg={_fmt_value(msg)}"
        extra = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")}
        if extra:
            msg += " " + " ".join(f"{k}={_fmt_value(v)}" for k, v in extra.items() if v is not None)
        line = f"ts={ts} level={record.levelname.lower()} logger={record.name} {msg}"
        if record.exc_info:
            line += " exc=" + _fmt_value(self.formatException(record.exc_info))
        return line


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(CurrentObjectFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # gRPC's own debug lines (one per channel) drown dpfd's events at debug level.
    logging.getLogger("grpc").setLevel(max(root.level, logging.INFO))
