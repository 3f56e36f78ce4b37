"""The etcd keyspace (see docs/architecture.md). Every key dpf writes is built here."""

from __future__ import annotations

from dpfd.api.intents import ObjectRef

ROOT = "/dpf/v1/"


def _seg(s: str) -> str:
    if not s or "/" in s:
        raise ValueError(f"invalid key segment {s!r}: must be non-empty and contain no '/'")
    return s


def intents_prefix(node: str | None = None) -> str:
    return ROOT + "intents/" + (f"{_seg(node)}/" if node is not None else "")


def intent_key(node: str, ref: ObjectRef) -> str:
    return intents_prefix(node) + f"{_seg(ref.kind)}/{_seg(ref.namespace)}/{_seg(ref.name)}"


def reports_prefix(node: str | None = None) -> str:
    return ROOT + "reports/" + (f"{_seg(node)}/" if node is not None else "")


def report_key(node: str, ref: ObjectRef) -> str:
    return reports_prefix(node) + f"{_seg(ref.kind)}/{_seg(ref.namespace)}/{_seg(ref.name)}"


def parse_node_ref(key: str, prefix: str) -> tuple[str, ObjectRef]:
    """Split `<prefix><node>/<kind>/<namespace>/<name>` back into its parts."""
    if not key.startswith(prefix):
        raise ValueError(f"key {key!r} is not under {prefix!r}")
    node, kind, namespace, name = key[len(prefix) :].split("/")
    return node, ObjectRef(kind=kind, namespace=namespace, name=name)


def member_key(node: str) -> str:
    return ROOT + "members/" + _seg(node)


MEMBERS_PREFIX = ROOT + "members/"
LOCKS_PREFIX = ROOT + "locks/"
CONTROLLER_ELECTION = ROOT + "controller/leader"


def lock_key(resource: str) -> str:
    return LOCKS_PREFIX + _seg(resource)


SEMAPHORES_PREFIX = ROOT + "semaphores/"
ELECTIONS_PREFIX = ROOT + "elections/"


def semaphore_prefix(name: str) -> str:
    """Holders and waiters of semaphore `name` are the keys under this prefix."""
    return SEMAPHORES_PREFIX + _seg(name) + "/"


def election_prefix(name: str) -> str:
    """Candidates of election `name` are the keys under this prefix."""
    return ELECTIONS_PREFIX + _seg(name) + "/"
