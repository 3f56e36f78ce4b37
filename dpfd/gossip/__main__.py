"""One standalone gossip member, for multi-process tests and for trying gossip by hand:

    python -m dpfd.gossip --name a --bind 127.0.0.1:7946 --key-file keys [--join 127.0.0.1:7947 ...]
        [--profile local] [--view-file a.json] [--rejoin-interval 1]

It prints one JSON line per membership change on stdout and, with --view-file, rewrites that file (atomically) with
its whole view after every change and every 0.2 s (suspicions and refutations change states without an event). SIGTERM or SIGINT: leave gracefully, then exit."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

from dpfd.config import ConfigError, read_gossip_keys
from dpfd.gossip.agent import GossipAgent
from dpfd.gossip.config import GossipConfig
from dpfd.gossip.keyring import Keyring
from dpfd.gossip.meta import MemberMeta
from dpfd.gossip.view import MemberChange, MemberInfo

VIEW_REFRESH_S = 0.2


def _write_view(path: Path, agent: GossipAgent) -> None:
    view = {m.name: {"state": m.state, "incarnation": m.incarnation, "addr": m.addr} for m in agent.members()}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(view, sort_keys=True))
    os.replace(tmp, path)


async def run(args: argparse.Namespace) -> int:
    keys = read_gossip_keys(Path(args.key_file))
    config = GossipConfig.profile(args.profile)
    meta = MemberMeta(role=args.role, node=args.name, version="standalone", started=time.time())
    seeds = list(args.join)

    async def seed_source() -> list[str]:
        return seeds

    agent = GossipAgent(
        args.name, meta, Keyring(keys), config=config, bind=args.bind, seeds=seed_source,
        rejoin_interval=args.rejoin_interval,
    )  # fmt: skip
    view_file = Path(args.view_file) if args.view_file else None

    def changed(change: MemberChange, m: MemberInfo) -> None:
        print(json.dumps({"change": change.value, "member": m.name, "state": m.state}), flush=True)
        if view_file is not None:
            _write_view(view_file, agent)

    await agent.start()
    agent.subscribe(changed)
    if view_file is not None:
        _write_view(view_file, agent)
    print(json.dumps({"started": args.name, "addr": agent.addr}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), VIEW_REFRESH_S)
        if view_file is not None:
            _write_view(view_file, agent)
    await agent.leave(within=2.0)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m dpfd.gossip", description="Run one standalone gossip member.")
    p.add_argument("--name", required=True)
    p.add_argument("--bind", required=True, help="IP:port for UDP and TCP")
    p.add_argument("--key-file", required=True, help="one base64 key per line, the primary first")
    p.add_argument("--join", action="append", default=[], help="a member's IP:port (repeatable)")
    p.add_argument("--profile", choices=GossipConfig.PROFILES, default="local")
    p.add_argument("--role", default="host")
    p.add_argument("--view-file", help="rewrite this JSON file with the whole view after every change")
    p.add_argument("--rejoin-interval", type=float, default=1.0)
    args = p.parse_args()
    try:
        return asyncio.run(run(args))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
