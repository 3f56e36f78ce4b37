"""Many simulated host dpfds in one process: real NodeAgents sharing one Store (for large fleets and benchmarks).

  python -m dpfd.sim.agents --etcd URL[,URL] --state-dir DIR --nodes-file FILE
  python -m dpfd.sim.agents --etcd URL[,URL] --configs-dir DIR

With --nodes-file each node gets the agent a real host dpfd runs, with the light DPU ownership reconciler in place
of the provisioner (hosts without BlueFields: the agent and the etcd path are what is measured), and its own
state dir under DIR. With --configs-dir every `*.yaml` there is a host dpfd's config, run with the host role's
full reconcilers (provisioning against dpf-sim's rack). Prints `ready N` once every agent has listed its
intents, then runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from dpfd.agent import AgentOptions, NodeAgent
from dpfd.agent.log import setup_logging
from dpfd.agent.reconciler import Reconciler
from dpfd.config import ConfigError, DpfdConfig, EtcdConfig, load_config
from dpfd.daemon import reconcilers_for, version
from dpfd.gc_tuning import tune_gc
from dpfd.host.dpu_intent import ownership_reconcilers
from dpfd.store import Store

AgentSpec = tuple[DpfdConfig, list[Reconciler]]


def light_agents(endpoints: list[str], nodes: list[str], state_dir: Path, session_ttl: float) -> list[AgentSpec]:
    specs: list[AgentSpec] = []
    for node in nodes:
        config = DpfdConfig(
            node=node,
            role="host",
            etcd=EtcdConfig(endpoints=endpoints),
            state_dir=state_dir / node / "state",
            runtime_dir=state_dir / node / "run",
            session_ttl=session_ttl,
        )
        specs.append((config, ownership_reconcilers(config.node, config.state_dir)))
    return specs


def configured_agents(configs_dir: Path) -> list[AgentSpec]:
    configs = [load_config(path) for path in sorted(configs_dir.glob("*.yaml"))]
    return [(config, reconcilers_for(config)) for config in configs]


async def run_agents(endpoints: list[str], build: Callable[[], list[AgentSpec]]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    store = await Store.connect(endpoints)
    # One bound for the whole process, so 1,000 agents do not run 4,000 reconciles at once.
    shared = asyncio.Semaphore(64)
    options = AgentOptions(version=version(), concurrency=shared)  # version() reads package metadata: once
    agents = [NodeAgent(config, store, reconcilers, options) for config, reconcilers in build()]
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
    parser.add_argument("--state-dir", type=Path, help="with --nodes-file: where each node's state dir goes")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--nodes-file", type=Path, help="one node name per line")
    which.add_argument("--configs-dir", type=Path, help="one host dpfd config (*.yaml) per node")
    parser.add_argument("--session-ttl", type=float, default=10.0)
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    setup_logging(args.log_level)  # warnings by default: a thousand agents' info lines would be the benchmark
    endpoints = args.etcd.split(",")
    if args.nodes_file is not None:
        if args.state_dir is None:
            parser.error("--nodes-file needs --state-dir")
        nodes = [n.strip() for n in args.nodes_file.read_text().splitlines() if n.strip()]

        def build() -> list[AgentSpec]:
            return light_agents(endpoints, nodes, args.state_dir, args.session_ttl)
    else:

        def build() -> list[AgentSpec]:
            return configured_agents(args.configs_dir)

    tune_gc()
    import uvloop

    try:
        return int(uvloop.run(run_agents(endpoints, build)))
    except ConfigError as e:
        print(f"agents: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
