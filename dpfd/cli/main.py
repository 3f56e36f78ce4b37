"""dpfctl: look at the fleet through etcd — which dpfds are alive, what each node was asked, what it answered —
and at the local dpfd through its admin socket.

  dpfctl [--etcd URL[,URL]] get members|intents|reports [--node NODE] [-o table|json]
  dpfctl members [--socket PATH] [-o table|json]

etcd endpoints come from --etcd, else $DPF_ETCD_ENDPOINTS, else the `etcd.endpoints` of /etc/dpf/dpfd.yaml.
`members` asks the local dpfd for its gossip view: --socket, else $DPF_ADMIN_SOCKET, else /run/dpfd/admin.sock.
Exit codes: 0 done, 1 etcd could not be read or the daemon could not be asked, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from dpfd.cli import members
from dpfd.config import ConfigError, load_config
from dpfd.store import Store, StoreError, keys

ENDPOINTS_ENV = "DPF_ETCD_ENDPOINTS"

# What each listing shows as a table: column title, and how to get it from the record.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "members": [("NODE", "node"), ("ROLE", "role"), ("VERSION", "version"), ("PID", "pid"), ("STARTED", "startedAt")],
    "intents": [
        ("NODE", "node"),
        ("KIND", "ref.kind"),
        ("NAMESPACE", "ref.namespace"),
        ("NAME", "ref.name"),
        ("GENERATION", "generation"),
        ("DELETING", "deleting"),
    ],
    "reports": [
        ("NODE", "node"),
        ("KIND", "ref.kind"),
        ("NAMESPACE", "ref.namespace"),
        ("NAME", "ref.name"),
        ("OBSERVED", "observedGeneration"),
        ("PHASE", "phase"),
        ("UPDATED", "updatedAt"),
    ],
}


class UsageError(Exception):
    pass


def endpoints_from(arg: str | None) -> list[str]:
    if arg:
        return [e for e in arg.split(",") if e]
    if os.environ.get(ENDPOINTS_ENV):
        return [e for e in os.environ[ENDPOINTS_ENV].split(",") if e]
    try:
        return list(load_config().etcd.endpoints)
    except ConfigError as e:
        raise UsageError(f"no etcd endpoints: pass --etcd, set {ENDPOINTS_ENV}, or fix the dpfd config ({e})") from None


def prefix_for(what: str, node: str | None) -> str:
    if what == "members":
        return keys.member_key(node) if node else keys.MEMBERS_PREFIX
    return keys.intents_prefix(node) if what == "intents" else keys.reports_prefix(node)


async def fetch(endpoints: list[str], what: str, node: str | None) -> list[dict[str, Any]]:
    async with await Store.connect(endpoints, dial_timeout=3.0, request_timeout=3.0) as store:
        kvs, _ = await store.get_prefix(prefix_for(what, node))
    records = []
    for kv in kvs:
        try:
            record = json.loads(kv.value)
        except ValueError:
            record = {"error": f"not JSON: {kv.key}"}
        if what == "members":
            record.setdefault("node", kv.key.rsplit("/", 1)[-1])
        records.append(record)
    return records


def _get(record: dict[str, Any], path: str) -> str:
    value: Any = record
    for part in path.split("."):
        value = value.get(part, "") if isinstance(value, dict) else ""
    return "" if value is None else str(value)


def render_table(what: str, records: list[dict[str, Any]]) -> str:
    columns = COLUMNS[what]
    rows = [[title for title, _ in columns]] + [[_get(r, path) for _, path in columns] for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="dpfctl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--etcd", help="etcd endpoints, comma-separated")
    sub = parser.add_subparsers(dest="command", required=True)
    get = sub.add_parser("get", help="list members, intents or reports")
    get.add_argument("what", choices=sorted(COLUMNS))
    get.add_argument("--node", help="only this node")
    get.add_argument("-o", "--output", choices=["table", "json"], default="table")
    gossip = sub.add_parser("members", help="the local dpfd's gossip view (over its admin socket)")
    gossip.add_argument("--socket", help=f"admin socket (default ${members.SOCKET_ENV} or {members.DEFAULT_SOCKET})")
    gossip.add_argument("-o", "--output", choices=["table", "json"], default="table")
    args = parser.parse_args(argv)
    if args.command == "members":
        return members_main(args.socket, args.output)
    try:
        endpoints = endpoints_from(args.etcd)
        records = asyncio.run(fetch(endpoints, args.what, args.node))
    except UsageError as e:
        print(f"dpfctl: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # a node name that cannot be a key segment
        print(f"dpfctl: {e}", file=sys.stderr)
        return 2
    except (StoreError, OSError, TimeoutError) as e:
        print(f"dpfctl: cannot read etcd at {','.join(endpoints)}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(records, indent=2) if args.output == "json" else render_table(args.what, records))
    return 0


def members_main(socket_arg: str | None, output: str) -> int:
    try:
        found = members.list_members(members.socket_path(socket_arg))
    except members.AdminUnreachable as e:
        print(f"dpfctl: {e}", file=sys.stderr)
        return 1
    print(members.render(found, output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
