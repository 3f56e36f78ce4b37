"""This node's intents as last seen in etcd, kept up to date from a list+watch."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from dpfd import fastjson
from dpfd.api.intents import Intent, ObjectRef
from dpfd.store import KeyValue, keys


@dataclass(frozen=True)
class IntentEntry:
    """One intent key: the parsed intent, or why it could not be parsed (then `intent` is None)."""

    ref: ObjectRef
    mod_revision: int
    intent: Intent | None
    error: str = ""
    generation: int = 0


class IntentView:
    def __init__(self, node: str) -> None:
        self.node = node
        self.prefix = keys.intents_prefix(node)
        self._entries: dict[ObjectRef, IntentEntry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, ref: ObjectRef) -> IntentEntry | None:
        return self._entries.get(ref)

    def refs(self) -> list[ObjectRef]:
        return list(self._entries)

    def reset(self, snapshot: list[KeyValue]) -> set[ObjectRef]:
        """Replace the view with a fresh list; returns refs that appeared, changed or disappeared."""
        fresh: dict[ObjectRef, IntentEntry] = {}
        for kv in snapshot:
            entry = self._decode(kv)
            if entry is not None:
                fresh[entry.ref] = entry
        changed = {r for r, e in fresh.items() if self._entries.get(r) != e}
        changed |= set(self._entries) - set(fresh)
        self._entries = fresh
        return changed

    def put(self, kv: KeyValue) -> ObjectRef | None:
        entry = self._decode(kv)
        if entry is None:
            return None
        self._entries[entry.ref] = entry
        return entry.ref

    def delete(self, key: str) -> ObjectRef | None:
        ref = self._ref_of(key)
        if ref is not None:
            self._entries.pop(ref, None)
        return ref

    def _ref_of(self, key: str) -> ObjectRef | None:
        try:
            _, ref = keys.parse_node_ref(key, keys.intents_prefix())
        except ValueError:
            return None  # not an intent key of the expected shape: nothing this node can act on
        return ref

    def _decode(self, kv: KeyValue) -> IntentEntry | None:
        try:
            intent = Intent.model_validate_json(kv.value)
        except ValidationError as e:
            ref = self._ref_of(kv.key)
            if ref is None:
                return None
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(document)"
            return IntentEntry(ref, kv.mod_revision, None, f"field {where!r}: {first['msg']}", _generation(kv.value))
        if kv.key == self._key_of(intent.ref):
            ref = intent.ref  # the usual case: stored where it says it belongs (cheaper than parsing the key)
        else:
            parsed = self._ref_of(kv.key)
            if parsed is None:
                return None
            ref = parsed
            if intent.ref != ref:
                why = f"intent names {intent.ref.path()} but is stored under {ref.path()}"
                return IntentEntry(ref, kv.mod_revision, None, why, intent.generation)
        if intent.node != self.node:
            why = f"intent names node {intent.node!r} but is stored under node {self.node!r}"
            return IntentEntry(ref, kv.mod_revision, None, why, intent.generation)
        return IntentEntry(ref, kv.mod_revision, intent, "", intent.generation)

    def _key_of(self, ref: ObjectRef) -> str:
        try:
            return keys.intent_key(self.node, ref)
        except ValueError:
            return ""  # a ref no key can name: never equal to the key it came from


def _generation(raw: bytes) -> int:
    try:
        g = fastjson.loads(raw).get("generation", 0)
    except (ValueError, AttributeError):
        return 0
    return g if isinstance(g, int) and g >= 0 else 0
