"""Chains' flows on one bridge, applied in atomic OpenFlow bundles, many chains per bundle.

Setting a chain's flows sends one bundle that deletes everything with the chain's cookie (its old flows and the
flows its switches learned) and adds the new flows: the bridge goes from the old chain to the new one with no
moment in between. A bundle's ovs-ofctl starts as soon as a chain is set and reads the chains' lines as they come
(ovs-ofctl parses while dpfd builds the next chains; the bundle closes once the event loop has no more chains to
hand in), and chains set while a bundle is committing go together in the next one, so many reconciles cost few
ovs-ofctl runs; if such a shared bundle fails, each chain is retried alone so one bad chain
fails only its own callers. What was applied is remembered per cookie: setting the same flows again costs
nothing; when the bridge lost its flows (ovs-vswitchd restarted) `restore()` puts all of them back in one bundle.

`submit` hands a chain over and returns the future of the bundle that will hold it, so a caller can wait for it
without holding anything else (the agent's concurrency slot): 1,000 chains reconciled four at a time still go
out in a few bundles.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Final

from dpfd.dpu.flows.model import Flow
from dpfd.dpu.flows.ofctl import Ofctl, flow_cookie

Texts = tuple[str, ...]

# A bundle's input ends after this many event-loop turns without a new chain (reconciles released by a slot or
# woken by a kick hand in their chains within a turn or two), or after this many lines.
QUIET_TURNS: Final = 3
MAX_LINES: Final = 200_000


def chain_lines(cookie: int, texts: Texts | None) -> list[str]:
    """The bundle lines replacing a chain's flows by `texts` (None: deleting the chain)."""
    return [f"delete cookie={cookie:#x}/-1", *(f"add {t}" for t in texts or ())]


class BridgeFlows:
    def __init__(self, ofctl: Ofctl) -> None:
        self.ofctl = ofctl
        self._installed: dict[int, Texts] = {}
        self._pending: dict[int, Texts | None] = {}
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.bundles = 0  # ovs-ofctl bundle runs so far (for tests and benchmarks)

    def installed(self) -> dict[int, Texts]:
        return dict(self._installed)

    def forget(self) -> None:
        """The bridge's flows are no longer known (restarted switch): the next set of every chain applies it."""
        self._installed.clear()

    async def set(self, cookie: int, flows: Sequence[Flow]) -> bool:
        """Make the chain's flows exactly `flows`; False when they already were."""
        done = self.submit(cookie, flows)
        if done is None:
            return False
        await done
        return True

    def submit(self, cookie: int, flows: Sequence[Flow]) -> asyncio.Future[None] | None:
        """Queue the chain's flows for the next bundle; the future is done when that bundle is applied (or
        failed). None when they are installed already."""
        return self.submit_texts(cookie, tuple(f.text() for f in flows))

    def submit_texts(self, cookie: int, texts: Texts) -> asyncio.Future[None] | None:
        """`submit` with the flows as ovs-ofctl text already (model.chain_texts)."""
        if cookie not in self._pending and self._installed.get(cookie) == texts:
            return None
        return self._enqueue(cookie, texts)

    async def restore(self) -> int:
        """Apply every installed chain again, together (the bridge lost its flows); the number of chains."""
        chains, self._installed = self._installed, {}
        await asyncio.gather(*(self._enqueue(c, t) for c, t in chains.items() if c not in self._pending))
        return len(chains)

    async def delete(self, cookie: int) -> None:
        """Remove every flow with the chain's cookie (learned ones too)."""
        await self._submit(cookie, None)

    async def collect(self, keep: Iterable[int]) -> list[int]:
        """Delete the flows of every cookie on the bridge not in `keep` (cookie 0, not ours, stays)."""
        kept = set(keep)
        found = {flow_cookie(line) for line in await self.ofctl.dump_flows()}
        stale = sorted(c for c in found if c != 0 and c not in kept)
        await asyncio.gather(*(self.delete(c) for c in stale))
        return stale

    async def _submit(self, cookie: int, texts: Texts | None) -> None:
        await self._enqueue(cookie, texts)

    def _enqueue(self, cookie: int, texts: Texts | None) -> asyncio.Future[None]:
        self._pending[cookie] = texts
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(cookie, []).append(done)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return done

    async def _flush(self) -> None:
        while self._pending:
            batch: dict[int, Texts | None] = {}
            waiters: dict[int, list[asyncio.Future[None]]] = {}
            try:
                await self._stream(batch, waiters)
            except Exception as e:
                if len(batch) <= 1:
                    self._settle(waiters, e)
                    continue
                for cookie, texts in batch.items():
                    try:
                        await self._apply({cookie: texts})
                    except Exception as e1:
                        self._settle({cookie: waiters[cookie]}, e1)
                    else:
                        self._settle({cookie: waiters[cookie]}, None)
            else:
                self._remember(batch)
                self._settle(waiters, None)

    async def _stream(self, batch: dict[int, Texts | None], waiters: dict[int, list[asyncio.Future[None]]]) -> None:
        """One bundle holding the pending chains and those set while it is being written: ovs-ofctl starts at
        once and parses while later chains are built; the input ends when the event loop has had QUIET_TURNS
        turns without a new chain (or MAX_LINES lines are written). `batch` and `waiters` are filled with what
        went in (a chain set twice meanwhile: its latest flows, written after the earlier ones)."""
        self.bundles += 1
        stream = await self.ofctl.open_bundle()
        try:
            quiet = 0
            while stream.lines < MAX_LINES:
                if not self._pending:
                    if quiet == QUIET_TURNS:
                        break
                    quiet += 1
                    await asyncio.sleep(0)  # a turn of the event loop: reconciles ready to run hand in their chains
                    continue
                quiet = 0
                chunk, self._pending = self._pending, {}
                for cookie in chunk:
                    waiters.setdefault(cookie, []).extend(self._waiters.pop(cookie, []))
                batch.update(chunk)
                await stream.write([line for cookie, texts in chunk.items() for line in chain_lines(cookie, texts)])
        except BaseException:
            await stream.abort()
            raise
        await stream.close()

    async def _apply(self, batch: dict[int, Texts | None]) -> None:
        lines = [line for cookie, texts in batch.items() for line in chain_lines(cookie, texts)]
        self.bundles += 1
        await self.ofctl.bundle(lines)
        self._remember(batch)

    def _remember(self, batch: dict[int, Texts | None]) -> None:
        for cookie, texts in batch.items():
            if texts is None:
                self._installed.pop(cookie, None)
            else:
                self._installed[cookie] = texts

    @staticmethod
    def _settle(waiters: dict[int, list[asyncio.Future[None]]], error: BaseException | None) -> None:
        for futures in waiters.values():
            for f in futures:
                if f.done():
                    continue
                if error is None:
                    f.set_result(None)
                else:
                    f.set_exception(error)
