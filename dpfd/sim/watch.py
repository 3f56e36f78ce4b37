"""List, then watch, one kind on an API server over HTTP: the loop the sim's stand-in controllers (the emulated
ArgoCD and Kamaji) and dpf-sim's progress lines run. `list_and_watch` returns when the watch ends or the server
reports an error; `keep_watching` lists again, for ever."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

Obj = dict[str, Any]


async def list_and_watch(
    http: aiohttp.ClientSession,
    url: str,
    what: str,
    on_list: Callable[[list[Obj]], Awaitable[None]],
    on_event: Callable[[str, Obj], Awaitable[None]],
) -> None:
    """``on_list(items)`` with the current objects, then ``on_event(type, object)`` for each ADDED, MODIFIED or
    DELETED event. ``what`` names the kind in errors."""
    async with http.get(url) as resp:
        if resp.status != 200:
            raise aiohttp.ClientError(f"listing {what}: HTTP {resp.status}")
        listing = await resp.json()
    await on_list(listing.get("items", []))
    rv = listing["metadata"]["resourceVersion"]
    async with http.get(f"{url}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}") as resp:
        async for line in resp.content:
            if not line.strip():
                continue
            event = json.loads(line)
            kind = event.get("type")
            if kind == "ERROR":
                return  # 410 Gone or similar: list again
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                await on_event(kind, event["object"])


async def keep_watching(
    http: aiohttp.ClientSession,
    url: str,
    what: str,
    on_list: Callable[[list[Obj]], Awaitable[None]],
    on_event: Callable[[str, Obj], Awaitable[None]],
    *,
    errors: tuple[type[BaseException], ...] = (),
    log: logging.Logger | None = None,
) -> None:
    """`list_and_watch` until cancelled: after the watch ends or fails (an HTTP or decoding error, or one of
    `errors` from the handlers; logged to `log` when given) it lists again a second later."""
    caught: tuple[type[BaseException], ...] = (aiohttp.ClientError, ValueError, KeyError, *errors)
    while True:
        try:
            await list_and_watch(http, url, what, on_list, on_event)
        except caught as exc:
            if log is not None:
                log.warning("watching %s failed (%s); listing again", what, exc)
        await asyncio.sleep(1)
