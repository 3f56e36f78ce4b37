"""The daemon's recent log lines, kept in memory for StreamLogs (`dpfctl logs [-f]`): a logging handler on the root
logger that formats each record as dpfd writes it to its journal and hands it to a Fanout."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dpfd.admin.fanout import Fanout
from dpfd.agent.log import KeyValueFormatter

DEFAULT_LINES = 2000


@dataclass(frozen=True, slots=True)
class LogLine:
    at: float
    level: str
    logger: str
    line: str


class LogBuffer(logging.Handler):
    def __init__(self, lines: int = DEFAULT_LINES, per_follower: int = 1000) -> None:
        super().__init__()
        self.setFormatter(KeyValueFormatter())
        self.lines: Fanout[LogLine] = Fanout(history=lines, per_subscriber=per_follower)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.lines.publish(LogLine(record.created, record.levelname.lower(), record.name, line))

    def install(self, logger: logging.Logger | None = None) -> None:
        (logger or logging.getLogger()).addHandler(self)

    def uninstall(self, logger: logging.Logger | None = None) -> None:
        (logger or logging.getLogger()).removeHandler(self)
