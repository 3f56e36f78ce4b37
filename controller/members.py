"""Which nodes have a dpfd: the `/dpf/v1/members/<node>` keys, each bound to its daemon's session lease."""

from __future__ import annotations

import json
from collections.abc import Callable

from controller.etcdwatch import PrefixWatch
from dpfd.store import KeyValue, Store
from dpfd.store import keys as store_keys

# (node, present)
MemberHandler = Callable[[str, bool], None]


class MembersCache:
    def __init__(self, store: Store) -> None:
        self.watch = PrefixWatch(store, store_keys.MEMBERS_PREFIX)
        self.synced = self.watch.synced
        self._handlers: list[MemberHandler] = []
        self.watch.add_handler(self._on_change)

    def add_handler(self, handler: MemberHandler) -> None:
        self._handlers.append(handler)

    def has(self, node: str) -> bool:
        """True if the node's dpfd is registered. Only meaningful once `synced` is set."""
        return store_keys.member_key(node) in self.watch.items

    async def confirmed_absent(self, node: str) -> bool:
        """True if etcd itself holds no member key for the node. For decisions that cannot be undone: the
        cache may lag behind etcd."""
        return await self.watch.store.get(store_keys.member_key(node)) is None

    def nodes(self) -> list[str]:
        return [k[len(store_keys.MEMBERS_PREFIX) :] for k in self.watch.items]

    def role(self, node: str) -> str | None:
        """The role the node's dpfd registered with ("host", "dpu"); None when absent. A member value without a
        readable role is a host: dpfd's default role."""
        kv = self.watch.items.get(store_keys.member_key(node))
        if kv is None:
            return None
        try:
            value = json.loads(kv.value)
        except ValueError:
            return "host"
        role = value.get("role") if isinstance(value, dict) else None
        return role if isinstance(role, str) and role else "host"

    def hosts(self) -> list[str]:
        """Nodes whose dpfd runs in role host, sorted."""
        return sorted(n for n in self.nodes() if self.role(n) == "host")

    async def run(self) -> None:
        await self.watch.run()

    def _on_change(self, key: str, kv: KeyValue | None) -> None:
        node = key[len(store_keys.MEMBERS_PREFIX) :]
        for handler in self._handlers:
            handler(node, kv is not None)
