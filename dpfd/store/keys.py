"""The etcd keyspace (see docs/architecture.md). Every key dpf writes is built here."""

from __future__ import annotations

from urllib.parse import quote, unquote

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


IPAM_PREFIX = ROOT + "ipam/"


def ipam_pool_prefix(pool: str) -> str:
    """Everything of IPAM pool `pool`: its marker key, its per-node ranges and their address allocations."""
    return IPAM_PREFIX + _seg(pool) + "/"


def ipam_pool_key(pool: str) -> str:
    """The pool's marker: rewritten by every change of its ranges, so its mod_revision orders those changes."""
    return ipam_pool_prefix(pool) + "pool"


def ipam_ranges_prefix(pool: str) -> str:
    return ipam_pool_prefix(pool) + "ranges/"


def ipam_range_key(pool: str, node: str) -> str:
    return ipam_ranges_prefix(pool) + _seg(node)


def ipam_node_prefix(pool: str, node: str) -> str:
    """The address allocations of `node` in `pool` (deleted with the node's range)."""
    return ipam_pool_prefix(pool) + "alloc/" + _seg(node) + "/"


def ipam_address_key(pool: str, node: str, address: str) -> str:
    return ipam_node_prefix(pool, node) + "ip/" + _seg(address)


def ipam_owner_key(pool: str, node: str, owner: str) -> str:
    """Owners ("<containerId>/<ifname>") are percent-encoded: a key segment has no '/'."""
    return ipam_node_prefix(pool, node) + "owner/" + _seg(quote(owner, safe=""))


def ipam_owner_of_key(key: str) -> str:
    return unquote(key.rsplit("/", 1)[1])
