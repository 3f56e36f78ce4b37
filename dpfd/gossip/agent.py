"""The gossip member inside an asyncio process (dpfd, the controller, dpf-sim): real UDP/TCP, seeds from etcd,
rejoin after partitions, listeners for membership changes, graceful leave.

Gossip is advisory (DESIGN.md): nothing here grants ownership; it tells the process quickly who is up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import Keyring
from dpfd.gossip.meta import MemberMeta
from dpfd.gossip.node import GossipNode
from dpfd.gossip.state import Event, Member, MemberState
from dpfd.gossip.transport import AsyncioRuntime
from dpfd.gossip.view import MemberChange, MemberInfo, MemberListener
from dpfd.store import Store
from dpfd.store import keys as store_keys

log = logging.getLogger(__name__)

SeedSource = Callable[[], Awaitable[list[str]]]
T = TypeVar("T")


def etcd_seeds(store: Store) -> SeedSource:
    """Seeds are the gossip addresses the registered dpfds put in their member keys (``"gossip"``)."""

    async def seeds() -> list[str]:
        kvs, _ = await store.get_prefix(store_keys.MEMBERS_PREFIX)
        out = []
        for kv in kvs:
            try:
                value = json.loads(kv.value)
            except ValueError:
                continue
            addr = value.get("gossip") if isinstance(value, dict) else None
            if isinstance(addr, str) and addr:
                out.append(addr)
        return out

    return seeds


class GossipAgent:
    def __init__(
        self,
        name: str,
        meta: MemberMeta,
        keyring: Keyring,
        *,
        config: GossipConfig | None = None,
        bind: str = "0.0.0.0:7946",
        advertise: str | None = None,
        seeds: SeedSource | None = None,
        rejoin_interval: float = 10.0,
        rng_seed: int | None = None,
    ) -> None:
        self.name = name
        self.meta = meta
        self.keyring = keyring
        self.config = config or GossipConfig.lan()
        self.bind = bind
        self.advertise = advertise
        self.seeds = seeds
        self.rejoin_interval = rejoin_interval
        self.runtime = AsyncioRuntime(seed=rng_seed)
        self.node: GossipNode | None = None
        self._listeners: list[MemberListener] = []
        self._changed = asyncio.Event()
        self._failed: dict[str, str] = {}  # name -> address of members declared dead: we keep trying them
        self._rejoin_task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Bind, start the failure detector and keep joining (seeds from etcd, and members we lost) in the background."""
        inbox = _Inbox()
        await self.runtime.start(inbox, self.bind)
        addr = self.advertise or self.runtime.bound_addr
        node = GossipNode(
            self.name,
            addr,
            self.config,
            self.runtime,
            self.keyring,
            meta=self.meta.encode(self.config.max_meta_size),
            on_event=self._on_event,
        )
        inbox.node = node
        self.node = node
        node.start()
        self._rejoin_task = asyncio.get_running_loop().create_task(self._rejoin_loop(), name="gossip-rejoin")
        log.info("gossip started", extra={"member": self.name, "addr": addr})

    @property
    def addr(self) -> str:
        assert self.node is not None, "start() first"
        return self.node.addr

    async def join(self, seeds: Sequence[str]) -> int:
        """Push-pull with each seed; how many answered."""
        node = self._require()
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        node.join(list(seeds), lambda n: _resolve(done, n))
        return await done

    async def leave(self, within: float = 2.0) -> None:
        """Tell the others we are going (they mark us left, not failed), then stop."""
        if self.node is None:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.node.leave(within, lambda: _resolve(done, None))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, within + 1.0)
        await self.stop()

    async def stop(self) -> None:
        if self._rejoin_task is not None:
            self._rejoin_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._rejoin_task
            self._rejoin_task = None
        if self.node is not None:
            self.node.stop()
        await self.runtime.close()

    def update_meta(self, meta: MemberMeta) -> None:
        self.meta = meta
        self._require().update_meta(meta.encode(self.config.max_meta_size))

    # --- the view ----------------------------------------------------------------------------------------------------

    def members(self) -> list[MemberInfo]:
        node = self._require()
        return sorted((MemberInfo.of(m) for m in node.members()), key=lambda m: m.name)

    def member(self, name: str) -> MemberInfo | None:
        m = self._require().membership.members.get(name)
        return MemberInfo.of(m) if m is not None else None

    def subscribe(self, listener: MemberListener) -> Callable[[], None]:
        """Call ``listener`` on every membership change; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    async def wait_for(self, predicate: Callable[[list[MemberInfo]], bool], within: float) -> bool:
        """Wait until ``predicate(members)`` holds; False after ``within`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate(self.members()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return True

    # --- internals ---------------------------------------------------------------------------------------------------

    def _require(self) -> GossipNode:
        if self.node is None:
            raise RuntimeError("gossip agent not started")
        return self.node

    def _on_event(self, event: Event, member: Member) -> None:
        if event is Event.JOIN:
            change = MemberChange.JOINED
            self._failed.pop(member.name, None)
        elif event is Event.UPDATE:
            change = MemberChange.UPDATED
        elif member.state is MemberState.LEFT:
            change = MemberChange.LEFT
            self._failed.pop(member.name, None)
        else:
            change = MemberChange.FAILED
            self._failed[member.name] = member.addr
        info = MemberInfo.of(member)
        log.info("gossip member %s", change.value, extra={"member": member.name, "addr": member.addr})
        self._changed.set()
        for listener in list(self._listeners):
            try:
                listener(change, info)
            except Exception:
                log.exception("gossip listener failed")

    async def _rejoin_loop(self) -> None:
        """Join through the seeds until someone answers; then keep trying the members we declared dead and any seed we
        do not see alive, which is how two sides of a healed partition find each other again (Serf's reconnect)."""
        node = self._require()
        joined = False
        while True:
            try:
                seeds = await self.seeds() if self.seeds is not None else []
            except Exception as e:
                log.debug("gossip seeds unavailable: %s", e)
                seeds = []
            alive = {m.addr for m in node.members() if m.state is MemberState.ALIVE}
            targets = [s for s in seeds if s != node.addr and (not joined or s not in alive)]
            targets += [a for a in self._failed.values() if a not in alive and a not in targets]
            if targets:
                answered = await self.join(targets)
                joined = joined or answered > 0
            elif seeds:
                joined = True
            await asyncio.sleep(self.rejoin_interval if joined else min(1.0, self.rejoin_interval))


def _resolve(fut: asyncio.Future[T], value: T) -> None:
    if not fut.done():
        fut.set_result(value)


class _Inbox:
    """The transport's handler: it binds before the engine exists (the engine needs the bound port as its address)."""

    node: GossipNode | None = None

    def on_packet(self, data: bytes, from_addr: str) -> None:
        if self.node is not None:
            self.node.on_packet(data, from_addr)

    def on_stream(self, data: bytes, from_addr: str) -> bytes | None:
        return self.node.on_stream(data, from_addr) if self.node is not None else None
