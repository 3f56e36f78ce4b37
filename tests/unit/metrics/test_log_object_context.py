"""Log lines made while an object is reconciled name it (object="DPU ns/name"), even when their code did not."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator

import pytest

from dpfd.agent.log import CurrentObjectFilter, EventLog, KeyValueFormatter, reconciling
from dpfd.api.intents import ObjectRef

REF = ObjectRef(kind="DPU", namespace="dpf-operator-system", name="w1-0000-03-00")
OBJECT = 'object="DPU dpf-operator-system/w1-0000-03-00"'


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(KeyValueFormatter())
    handler.addFilter(CurrentObjectFilter())
    logger = logging.getLogger("dpfd.test.objects")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield out
    logger.removeHandler(handler)


async def test_lines_inside_a_reconcile_and_its_tasks_name_the_object(lines: io.StringIO) -> None:
    plain = logging.getLogger("dpfd.test.objects")
    events = EventLog(plain, node="h1")

    async def background() -> None:
        plain.info("DPU is locked by %s; waiting", "h2")

    with reconciling(REF):
        plain.info("plain line")
        events.info("phase_changed", phase="Pending")
        events.info("explicit", object="BFB ns/other")  # names its own object: kept
        await asyncio.get_running_loop().create_task(background())
    plain.info("after")
    events.info("after_event")

    got = lines.getvalue().splitlines()
    assert got[0].endswith(f'event=log msg="plain line" {OBJECT}')
    assert got[1].endswith(f"event=phase_changed node=h1 phase=Pending {OBJECT}")
    assert got[2].endswith('event=explicit node=h1 object="BFB ns/other"') and got[2].count("object=") == 1
    assert got[3].endswith(OBJECT), "a task started by the reconcile names its object too"
    assert "object=" not in got[4] and "object=" not in got[5]
