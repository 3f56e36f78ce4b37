"""The one way tests wait: poll a condition until it holds, with a deadline (never a bare sleep)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any


async def eventually(cond: Callable[[], Any], within: float = 5.0, what: str = "condition", poll: float = 0.02) -> Any:
    """Call `cond` (sync or async) until it returns something truthy, and return that; fail after `within` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = cond()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {within:g}s waiting for {what} (last value: {value!r})")
        await asyncio.sleep(poll)
