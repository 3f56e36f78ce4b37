"""dpfd's log lines: key=value, including the fields modules pass with `extra=`."""

from __future__ import annotations

import logging

from dpfd.agent.log import KeyValueFormatter


def _format(msg: str, **extra: object) -> str:
    record = logging.LogRecord("dpfd.test", logging.WARNING, __file__, 1, msg, None, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return KeyValueFormatter().format(record)


def test_extra_fields_appear_as_key_values() -> None:
    line = _format("provisioning failed", dpu="w1-0000-03-00", reason="DMSInstallError", error="too large: 2 MiB")
    assert (
        'event=log msg="provisioning failed" dpu=w1-0000-03-00 reason=DMSInstallError error="too large: 2 MiB"' in line
    )
    assert line.startswith("ts=") and " level=warning logger=dpfd.test " in line


def test_a_plain_message_has_no_extra_fields() -> None:
    assert _format("hello").endswith("event=log msg=hello")
