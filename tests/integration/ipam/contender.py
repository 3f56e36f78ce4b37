"""A second process for the IPAM tests: claims ranges or addresses concurrently with the test's own tasks.

    contender.py ENDPOINT ranges POOL PREFIX COUNT      claim a /28 of 198.51.100.0/24 for COUNT nodes
    contender.py ENDPOINT addresses POOL NODE PREFIX COUNT   allocate COUNT owners
Prints "ready" once connected, waits for "go" on stdin, prints the outcome as JSON last.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from dpfd.store import Store
from tests.integration.ipam.claims import allocate_many, claim_subnets


async def main(argv: list[str]) -> None:
    endpoint, what, pool, *rest = argv
    store = await Store.connect([endpoint])
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    try:
        if what == "ranges":
            prefix, count = rest
            out: object = await claim_subnets(store, pool, [f"{prefix}{i}" for i in range(int(count))])
        else:
            node, prefix, count = rest
            out = await allocate_many(store, pool, node, [f"{prefix}{i}/eth0" for i in range(int(count))])
    finally:
        await store.close()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
