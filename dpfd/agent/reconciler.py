"""The contract between NodeAgent and the code that converges one kind of intent on this machine."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from dpfd.api.intents import Intent, ObjectRef, Report

if TYPE_CHECKING:
    from dpfd.store import Session, Store

Kick = Callable[[ObjectRef, float], None]


@dataclass(frozen=True)
class AgentLink:
    """What the agent hands a KickingReconciler.

    `kick(ref, delay)` reconciles `ref` again after `delay` seconds. `store` and `session()` (the agent's live etcd
    session, None while it has none) let the reconciler own work through store locks bound to that session;
    `holder` names this process in them. Without a store (the machine tested alone) there is nothing to lock with.
    `kick_kind(kind)` reconciles every intent of a kind again now (the machine lost what they made, e.g. a
    restarted ovs-vswitchd lost its flows); `refs(kind)` names the intents of a kind this node has.
    """

    kick: Kick
    store: Store | None = None
    session: Callable[[], Session | None] = lambda: None
    holder: str = ""
    kick_kind: Callable[[str], None] = lambda kind: None
    refs: Callable[[str], list[ObjectRef]] = lambda kind: []


@runtime_checkable
class Reconciler(Protocol):
    """Converges the machine towards one intent kind. Level-triggered and idempotent.

    `reconcile` gets the whole current intent (never a diff), or None when the intent is gone, in which
    case it releases what it holds (the agent then deletes the report). It returns the report to write,
    or None to leave the current report as it is. An exception means "retry with backoff". The agent never
    runs two reconciles of one ref at once.
    """

    kind: str

    async def reconcile(self, ref: ObjectRef, intent: Intent | None) -> Report | None: ...


@runtime_checkable
class LocalStateReconciler(Reconciler, Protocol):
    """A reconciler that keeps local state per object, and can name the objects it holds state for.

    On every (re)list the agent also reconciles these refs, so state for an intent deleted while dpfd
    was down or disconnected is released.
    """

    def local_refs(self) -> Iterable[ObjectRef]: ...


@runtime_checkable
class KickingReconciler(Reconciler, Protocol):
    """A reconciler with work that outlives a reconcile (downloads, flashing, reboots).

    The agent hands it an AgentLink (`kick(ref, delay)` to be reconciled again when that work ends or a wait is
    over, and its store session for locks), and calls `close()` on shutdown to stop the work (whose progress the
    reconciler keeps on disk).
    """

    def bind(self, link: AgentLink) -> None: ...

    async def close(self) -> None: ...
