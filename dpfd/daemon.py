"""dpfd: the node daemon. `dpfd [--config PATH] [run]` runs it; `dpfd --version` prints the version.

Wiring only: configuration, event loop, systemd notify and watchdog, signals, the gossip member (when enabled),
the /metrics endpoint (when configured), and the NodeAgent with the reconcilers of this node's role.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from dpfd.agent.backoff import Backoff
from dpfd.agent.log import EventLog, setup_logging
from dpfd.config import ConfigError, DpfdConfig, load_config, read_gossip_keys
from dpfd.gc_tuning import tune_gc
from dpfd.services import NodeServices
from dpfd.systemd_notify import SystemdNotifier

if TYPE_CHECKING:
    from dpfd.agent.reconciler import Reconciler
    from dpfd.dpu.dataplane import Dataplane
    from dpfd.dpu.joiner import DpuRole
    from dpfd.gossip.agent import GossipAgent
    from dpfd.store import Store

SHUTDOWN_TIMEOUT = 10.0
GOSSIP_LEAVE_TIMEOUT = 2.0  # s for the leave message to spread before the member stops
log = EventLog(logging.getLogger("dpfd"))


def version() -> str:
    try:
        return metadata.version("dpf")
    except metadata.PackageNotFoundError:
        return _source_tree_version()


def _source_tree_version() -> str:
    # Running from a checkout that is not pip-installed: the version is in pyproject.toml.
    import tomllib

    try:
        with (Path(__file__).resolve().parent.parent / "pyproject.toml").open("rb") as f:
            return str(tomllib.load(f)["project"]["version"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return "0+unknown"


def reconcilers_for(
    config: DpfdConfig, dataplane: Dataplane | None = None, gossip: GossipAgent | None = None
) -> list[Reconciler]:
    if config.role == "host":
        from dpfd.host.setup import host_reconcilers

        return host_reconcilers(config, gossip)
    # The dpu role: ServiceInterface and ServiceChain on OVS when dataplane.enabled (see dataplane_for); its
    # cluster join: _start_dpu_role.
    return dataplane.reconcilers() if dataplane is not None else []


def dataplane_for(config: DpfdConfig, store: Store | None = None) -> Dataplane | None:
    """The DPU's data plane (OVS ports and flows, the SFC CNI socket with addresses from the etcd IPAM when
    there is a store) when the config asks for one."""
    if config.role != "dpu" or not config.dataplane.enabled:
        return None
    from dpfd.dpu.dataplane import Dataplane

    return Dataplane(config, store)


def build_parser() -> argparse.ArgumentParser:
    config_help = "config file (default: $DPFD_CONFIG or /etc/dpf/dpfd.yaml)"
    parser = argparse.ArgumentParser(prog="dpfd", description="dpf node daemon (host or DPU)")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--config", metavar="PATH", help=config_help)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="run the daemon (the default)")
    # Also after the subcommand (`dpfd run --config X`); SUPPRESS keeps a value given before it.
    run.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS, help=config_help)
    from dpfd.host import dms_cli

    dms = sub.add_parser("dms-install", help="flash one DPU through its DMS by hand (recovery when automation cannot)")
    dms_cli.add_arguments(dms)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        print(f"dpfd {version()}")
        return 0
    if args.command == "dms-install":
        from dpfd.host import dms_cli

        return dms_cli.run(args)  # needs no config file: it talks to one DMS only
    try:
        config = load_config(args.config)
        _gossip_keys(config)  # a key file that cannot be used is a config error: say so now, exit 2
    except ConfigError as e:
        print(f"dpfd: error: {e}", file=sys.stderr)
        return 2
    setup_logging(config.log_level)
    tune_gc()
    import uvloop

    return int(uvloop.run(run_daemon(config)))


async def run_daemon(config: DpfdConfig, notifier: SystemdNotifier | None = None) -> int:
    # Imported here so that `--version` and config errors answer fast and need nothing else.
    from dpfd.admin.wiring import start_admin
    from dpfd.agent import AgentOptions, NodeAgent
    from dpfd.metrics.wiring import DaemonMetrics

    notifier = notifier or SystemdNotifier()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # SIGHUP (systemctl reload) must never end dpfd: until gossip runs there is nothing to reload.
    loop.add_signal_handler(signal.SIGHUP, lambda: log.info("reload_ignored", reason="nothing to reload"))
    # The watchdog runs from the start: connecting to etcd may take a while and is not a hang.
    watchdog = loop.create_task(notifier.run_watchdog(), name="watchdog")
    log.info(
        "starting",
        node=config.node,
        role=config.role,
        version=version(),
        endpoints=",".join(config.etcd.endpoints),
    )
    # Served before etcd is reached: a dpfd that cannot connect is worth a scrape too.
    metrics = DaemonMetrics(config, version())
    await metrics.start()
    # The DPU's cluster join needs no etcd: it starts at once and goes on while etcd is unreachable.
    dpu_role = _start_dpu_role(config) if config.role == "dpu" else None
    notifier.status("connecting to etcd")
    store = await _connect(config, stop)
    if store is None:
        notifier.stopping("stopped before connecting to etcd")
        if dpu_role is not None:
            await dpu_role.stop()
        await metrics.stop()
        watchdog.cancel()
        return 0
    metrics.watch_store(store)
    services = NodeServices(config, version(), store=store)
    services.gossip = await _start_gossip(config, store)
    metrics.watch_gossip(services.gossip)
    if services.gossip is not None:
        loop.add_signal_handler(signal.SIGHUP, _reload_gossip_keys, services.gossip, config)
    admin = await start_admin(config, services)
    dataplane = dataplane_for(config, store)
    agent = services.agent = NodeAgent(
        config,
        store,
        reconcilers_for(config, dataplane, services.gossip),
        AgentOptions(
            version=version(),
            gossip_addr=services.gossip.addr if services.gossip is not None else None,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            on_connection_change=lambda up: notifier.status(
                "registered in etcd" if up else "etcd session lost; keeping the machine as it is"
            ),
        ),
    )
    metrics.watch_agent(agent)
    if dataplane is not None:
        await dataplane.start(agent.ready)
    await agent.start()
    ready = loop.create_task(agent.ready.wait())
    stopped = loop.create_task(stop.wait())
    await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if agent.ready.is_set():
        notifier.ready(f"watching {len(agent.view)} intents")
        log.info("ready", node=config.node, intents=len(agent.view))
    await stopped
    ready.cancel()
    log.info("stopping", node=config.node, in_flight=agent.busy)
    notifier.stopping("finishing in-flight work")
    if services.gossip is not None:
        # Leave while the etcd session still holds: the others see this member leave, not fail.
        await _leave_gossip(services.gossip)
    clean = await agent.stop(SHUTDOWN_TIMEOUT)
    if admin is not None:
        await admin.stop()
    if dataplane is not None:
        await dataplane.stop()
    if dpu_role is not None:
        await dpu_role.stop()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(store.close(), 5.0)
    await metrics.stop()  # last: a scrape during the stop still answers
    watchdog.cancel()
    log.info("stopped", node=config.node, clean=clean)
    return 0


def _gossip_keys(config: DpfdConfig) -> list[bytes]:
    if not config.gossip.enabled or config.gossip.key_file is None:
        return []
    return read_gossip_keys(config.gossip.key_file)


async def _start_gossip(config: DpfdConfig, store: Store) -> GossipAgent | None:
    """This dpfd's gossip member when the config turns gossip on. Gossip is advisory: when it cannot start, dpfd runs
    without it (the host then waits on DMS alone for a DPU's reboot) and says why."""
    if not config.gossip.enabled:
        return None
    from dpfd.gossip_member import start_gossip

    try:
        gossip = await start_gossip(config, store, version(), _gossip_keys(config))
    except (OSError, ValueError, ConfigError) as e:
        log.error("gossip_not_started", node=config.node, bind=config.gossip.bind, error=f"{type(e).__name__}: {e}")
        return None
    log.info("gossip_started", node=config.node, addr=gossip.addr, profile=config.gossip.profile)
    return gossip


def _reload_gossip_keys(gossip: GossipAgent, config: DpfdConfig) -> None:
    """SIGHUP: the key file again (rotation: add the new key, make it first, then drop the old one, everywhere)."""
    from dpfd.gossip_member import reload_key_file

    try:
        count = reload_key_file(gossip, config.gossip)
    except (ConfigError, ValueError) as e:
        log.error("gossip_keys_not_reloaded", node=config.node, error=str(e))
        return
    log.info("gossip_keys_reloaded", node=config.node, keys=count)


async def _leave_gossip(gossip: GossipAgent) -> None:
    try:
        await gossip.leave(GOSSIP_LEAVE_TIMEOUT)
    except Exception as e:
        log.warning("gossip_leave_failed", error=f"{type(e).__name__}: {e}")
        with contextlib.suppress(Exception):
            await gossip.stop()


def _start_dpu_role(config: DpfdConfig) -> DpuRole:
    from dpfd.dpu.joiner import DpuRole

    return DpuRole(config.join, config.node, config.state_dir).start()


async def _connect(config: DpfdConfig, stop: asyncio.Event) -> Store | None:
    """Connect to etcd, retrying until it works; None if told to stop first."""
    from dpfd.store import Store

    backoff = Backoff(base=0.2, cap=5.0)
    attempt = 0
    while not stop.is_set():
        connecting = asyncio.ensure_future(Store.connect(config.etcd.endpoints))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({connecting, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
            return None
        try:
            return connecting.result()
        except Exception as e:
            attempt += 1
            delay = backoff.delay(attempt)
            log.warning(
                "etcd_connect_failed",
                attempt=attempt,
                error=f"{type(e).__name__}: {e}",
                retry_in=f"{delay:.2f}s",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    return None


if __name__ == "__main__":
    sys.exit(main())
