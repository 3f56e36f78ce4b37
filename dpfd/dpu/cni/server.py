"""The DPU dpfd's unix socket for the SFC CNI plugin: one request per connection (dpfd.cni.wire)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any, Protocol

from dpfd.cni import wire

log = logging.getLogger(__name__)


class Handler(Protocol):
    async def handle(self, message: dict[str, Any]) -> dict[str, Any]: ...


class CniServer:
    """Listens on `path` (mode 0600: only root's runtime may attach pods) and answers with `handler`."""

    def __init__(self, handler: Handler, path: Path | str = wire.DEFAULT_SOCKET) -> None:
        self._handler = handler
        self.path = Path(path)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> CniServer:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a socket left by a dpfd that died; nothing listens on it
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=wire.MAX_MESSAGE)
        os.chmod(self.path, 0o600)
        log.info("SFC CNI socket listening on %s", self.path)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            try:
                line = await reader.readuntil(b"\n")
                answer = await self._handler.handle(wire.decode(line))
            except asyncio.LimitOverrunError:
                answer = wire.error(wire.ERR_DECODE, f"request longer than {wire.MAX_MESSAGE} bytes")
            except asyncio.IncompleteReadError:
                answer = wire.error(wire.ERR_DECODE, "request not terminated by a newline")
            except ValueError as e:
                answer = wire.error(wire.ERR_DECODE, "request is not a JSON object", str(e))
            writer.write(wire.encode(answer))
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the plugin went away (killed by the runtime's timeout) or dpfd is stopping
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
            if task is not None:
                self._tasks.discard(task)
