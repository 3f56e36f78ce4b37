"""Many simulated host dpfds in one process: real NodeAgents sharing one Store (for large fleets and benchmarks).

  python -m dpfd.sim.agents --etcd URL[,URL] --state-dir DIR --nodes-file FILE

Each node gets the agent a real host dpfd runs, with the light DPU ownership reconciler in place of the provisioner
(these hosts have no BlueFields: the agent and the etcd path are what is measured), and its own state dir under DIR.
Prints `ready N` once every agent has listed its intents, then runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from dpfd.agent import AgentOptions, NodeAgent
from dpfd.config import DpfdConfig, EtcdConfig
from dpfd.daemon import version
from dpfd.gc_tuning import tune_gc
from dpfd.host.dpu_intent import ownership_reconcilers
from dpfd.store import Store


async def run_agents(endpoints: list[str], nodes: list[str], state_dir: Path, session_ttl: float) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    store = await Store.connect(endpoints)
    # One bound for the whole process, so 1,000 agents do not run 4,000 reconciles at once.
    shared = asyncio.Semaphore(64)
    options = AgentOptions(version=version(), concurrency=shared)  # version() reads package metadata: once
    agents = []
    for node in nodes:
        config = DpfdConfig(
            node=node,
            role="host",
            etcd=EtcdConfig(endpoints=endpoints),
            state_dir=state_dir / node / "state",
            runtime_dir=state_dir / node / "run",
            session_ttl=session_ttl,
        )
        agents.append(NodeAgent(config, store, ownership_reconcilers(config.node, config.state_dir), options))
    await asyncio.gather(*(a.start() for a in agents))
    await asyncio.gather(*(a.ready.wait() for a in agents))
    print(f"ready {len(agents)}", flush=True)
    await stop.wait()
    await asyncio.gather(*(a.stop(10.0) for a in agents))
    await store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dpfd.sim.agents", description=__doc__)
    parser.add_argument("--etcd", required=True, help="etcd endpoints, comma-separated")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--nodes-file", type=Path, required=True, help="one node name per line")
    parser.add_argument("--session-ttl", type=float, default=10.0)
    args = parser.parse_args(argv)
    nodes = [n.strip() for n in args.nodes_file.read_text().splitlines() if n.strip()]
    tune_gc()
    import uvloop

    return int(uvloop.run(run_agents(args.etcd.split(","), nodes, args.state_dir, args.session_ttl)))


if __name__ == "__main__":
    sys.exit(main())
