"""`dpf-controller run`: flags, logging, the event loop (uvloop), signals, and an orderly stop.

SIGTERM/SIGINT end the run cleanly: the leader flushes pending intents and resigns, so a standby takes over
at once instead of after the lease TTL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from dataclasses import dataclass

import uvloop

from controller.credentials.access import AccessError, ClusterAccess, host_access_from_kubeconfig
from controller.dpucluster.clusters import DpuClusters
from controller.gossip_member import PROFILES, GossipSettingsError, gossip_settings, load_keyring, start_member
from controller.kube.client import KubeClient
from controller.leader import LeaderElector
from controller.logs import setup_logging
from controller.manager import Controller, ControllerOptions
from controller.metrics import ControllerMetrics
from controller.operatorconfig.system_services import DEFAULT_DPU_NETWORKING_CHART, ChartError, parse_helm_chart
from dpfd.config import ConfigError, GossipSettings
from dpfd.daemon import version
from dpfd.gc_tuning import tune_gc
from dpfd.gossip.agent import GossipAgent
from dpfd.gossip_member import reload_key_file
from dpfd.metrics.server import parse_listen
from dpfd.store import Store

log = logging.getLogger("controller")


@dataclass
class RunConfig:
    kubeconfig: str
    etcd_endpoints: list[str]
    identity: str
    lease_ttl: float = 10.0
    options: ControllerOptions | None = None
    gossip: GossipSettings | None = None  # None: no gossip member
    metrics_listen: str | None = None  # IP:PORT to serve /metrics on; None: no metrics endpoint


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="dpf-controller run", description="Run the DPF controller.")
    p.add_argument("--kubeconfig", required=True, help="kubeconfig of the host cluster")
    p.add_argument("--etcd-endpoints", required=True, help="comma-separated etcd client URLs")
    p.add_argument("--id", default=f"{socket.gethostname()}-{os.getpid()}", help="this replica's identity")
    p.add_argument("--lease-ttl", type=float, default=10.0, help="leader session TTL in seconds")
    p.add_argument("--workers", type=int, default=8, help="reconcile workers")
    p.add_argument("--resync", type=float, default=300.0, help="informer resync period in seconds")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--metrics-listen", metavar="IP:PORT", help="serve Prometheus /metrics here (default: off)")
    p.add_argument(
        "--dpu-networking-chart",
        default=DEFAULT_DPU_NETWORKING_CHART,
        metavar="REPO/CHART:VERSION",
        help="the chart of the system DPUServices (flannel, multus, sriov-device-plugin) when the DPFOperatorConfig "
        "names none (default: %(default)s)",
    )
    g = p.add_argument_group("gossip", "join the dpfds' gossip to mark DPUs whose daemons are down (off by default)")
    g.add_argument("--gossip-key-file", help="the dpfds' gossip key file (one base64 key per line); turns gossip on")
    g.add_argument("--gossip-bind", default="0.0.0.0:7946", help="host:port to listen on (UDP and TCP)")
    g.add_argument(
        "--gossip-advertise",
        help="host:port the dpfds should reach this replica at (default: bound to 0.0.0.0, the address routing to etcd)",
    )
    g.add_argument("--gossip-profile", default="lan", choices=sorted(PROFILES), help="failure detector timings")
    g.add_argument("--gossip-rejoin-interval", type=float, default=10.0, help="seconds between rejoin attempts")
    args = p.parse_args(argv)
    if args.lease_ttl < 2:
        p.error(f"--lease-ttl {args.lease_ttl:g}: must be at least 2 seconds (etcd's minimum lease TTL)")
    if args.workers < 1:
        p.error(f"--workers {args.workers}: must be at least 1")
    try:
        parse_helm_chart(args.dpu_networking_chart)
    except ChartError as exc:
        p.error(f"--dpu-networking-chart: {exc}")
    if args.metrics_listen:
        try:
            parse_listen(args.metrics_listen)
        except ValueError as exc:
            p.error(f"--metrics-listen {exc}")
    if args.gossip_key_file:
        try:
            args.gossip = gossip_settings(
                args.gossip_key_file,
                bind=args.gossip_bind,
                advertise=args.gossip_advertise,
                profile=args.gossip_profile,
                rejoin_interval=args.gossip_rejoin_interval,
            )
        except GossipSettingsError as exc:
            p.error(str(exc))
    else:
        args.gossip = None
    return args


async def run_controller(
    cfg: RunConfig,
    stop: asyncio.Event,
    *,
    elector_out: list[LeaderElector] | None = None,
    controller_out: list[Controller] | None = None,
) -> None:
    """Run one controller replica until `stop` is set. The *_out lists receive the parts (for tests)."""
    metrics = ControllerMetrics(cfg.metrics_listen, cfg.identity, version()) if cfg.metrics_listen else None
    if metrics is not None:
        await metrics.start()
    try:
        await _run_replica(cfg, stop, metrics, elector_out, controller_out)
    finally:
        if metrics is not None:
            await metrics.stop()


async def _run_replica(
    cfg: RunConfig,
    stop: asyncio.Event,
    metrics: ControllerMetrics | None,
    elector_out: list[LeaderElector] | None,
    controller_out: list[Controller] | None,
) -> None:
    kube = await KubeClient.from_kubeconfig(cfg.kubeconfig)
    try:
        store = await Store.connect(cfg.etcd_endpoints)
        gossip: GossipAgent | None = None
        try:
            if cfg.gossip is not None:
                gossip = await start_member(cfg.gossip, cfg.identity, store, cfg.etcd_endpoints)
                _reload_keys_on_sighup(gossip, cfg.gossip)
            options = cfg.options or ControllerOptions()
            clusters = DpuClusters(kube) if options.dpu_clusters else None
            controller = Controller(
                kube,
                store,
                cfg.options,
                cluster_access=clusters,
                gossip=gossip,
                host_access=_host_access(cfg.kubeconfig),
            )
            elector = LeaderElector(store, cfg.identity, ttl=cfg.lease_ttl)
            if metrics is not None:
                metrics.watch_store(store)
                metrics.watch_gossip(gossip)
                metrics.watch_controller(controller)
                metrics.watch_elector(elector)
            if elector_out is not None:
                elector_out.append(elector)
            if controller_out is not None:
                controller_out.append(controller)
            caches = asyncio.create_task(controller.run_caches(), name="caches")
            election = asyncio.create_task(elector.run(controller.lead, stop), name="election")
            stopper = asyncio.create_task(stop.wait())
            try:
                await asyncio.wait({caches, election, stopper}, return_when=asyncio.FIRST_COMPLETED)
                if caches.done():
                    caches.result()  # surface why the caches died
            finally:
                stop.set()
                with contextlib.suppress(asyncio.CancelledError):
                    await election  # resigns after a graceful term
                caches.cancel()
                stopper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await caches
                if clusters is not None:
                    await clusters.close()
        finally:
            if gossip is not None:
                try:
                    await gossip.leave()  # the dpfds see this replica left, not failed
                except Exception:
                    log.exception("gossip leave failed")
            await store.close()
    finally:
        await kube.close()


def _host_access(kubeconfig: str) -> ClusterAccess | None:
    """The host cluster as credential Secrets name it; None (logged) when the kubeconfig does not say."""
    try:
        return host_access_from_kubeconfig(kubeconfig)
    except AccessError as e:
        log.warning("credential requests for the host cluster will fail", extra={"error": str(e)})
        return None


def _reload_keys_on_sighup(gossip: GossipAgent, settings: GossipSettings) -> None:
    """SIGHUP re-reads the key file, as dpfd does: rotation without restarting the controller."""

    def reload() -> None:
        try:
            count = reload_key_file(gossip, settings)
        except (ConfigError, ValueError) as e:
            log.error("gossip keys not reloaded", extra={"error": str(e)})
            return
        log.info("gossip keys reloaded", extra={"keys": count})

    # Only the main thread's loop may own signals (tests run replicas in other loops): then there is no reload.
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)


def run_main(argv: list[str]) -> int:
    args = parse_args(argv)
    gossip: GossipSettings | None = args.gossip
    if gossip is not None and gossip.key_file is not None:
        try:
            load_keyring(gossip.key_file)  # refuse an unusable key file now, not after connecting
        except GossipSettingsError as exc:
            print(f"dpf-controller: {exc}", file=sys.stderr)
            return 2
    setup_logging(args.log_level)
    tune_gc()
    endpoints = [e.strip() for e in args.etcd_endpoints.split(",") if e.strip()]
    cfg = RunConfig(
        kubeconfig=args.kubeconfig,
        etcd_endpoints=endpoints,
        identity=args.id,
        lease_ttl=args.lease_ttl,
        options=ControllerOptions(
            workers=args.workers, resync=args.resync, dpu_networking_chart=args.dpu_networking_chart
        ),
        gossip=gossip,
        metrics_listen=args.metrics_listen,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        # SIGHUP never ends the controller: with gossip it reloads the key file (set when the member starts).
        loop.add_signal_handler(signal.SIGHUP, lambda: log.info("reload ignored: nothing to reload"))
        log.info("dpf-controller starting", extra={"identity": cfg.identity, "etcd": ",".join(endpoints)})
        await run_controller(cfg, stop)
        log.info("dpf-controller stopped", extra={"identity": cfg.identity})

    try:
        uvloop.run(main())
    except Exception as exc:
        log.error("dpf-controller failed", extra={"error": repr(exc)}, exc_info=True)
        return 1
    return 0
