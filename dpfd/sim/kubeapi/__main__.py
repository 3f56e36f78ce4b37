"""python -m dpfd.sim.kubeapi --port P --kubeconfig OUT [--cluster-name N] [--state-dir D] [--tls-dir D]: serve until
SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from dpfd.gc_tuning import tune_gc
from dpfd.sim.kubeapi.server import KubeApiServer
from dpfd.sim.kubeapi.tls import ensure_tls


async def serve(args: argparse.Namespace) -> None:
    tls = ensure_tls(Path(args.tls_dir), [args.host]) if args.tls_dir else None
    server = KubeApiServer(
        state_dir=Path(args.state_dir) if args.state_dir else None, event_window=args.event_window, tls=tls
    )
    url = await server.start(args.host, args.port)
    if args.kubeconfig:
        server.write_kubeconfig(Path(args.kubeconfig), context=args.cluster_name)
    print(url, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dpfd.sim.kubeapi", description="emulated Kubernetes API server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 lets the kernel pick one")
    parser.add_argument("--kubeconfig", help="write a kubeconfig for the server here")
    parser.add_argument(
        "--cluster-name",
        default="dpf-sim",
        help="the kubeconfig's cluster, user and context name (a DPU cluster's: its DPUCluster's name, as Kamaji's)",
    )
    parser.add_argument("--state-dir", help="keep a JSON snapshot of all objects here")
    parser.add_argument(
        "--tls-dir",
        help="serve HTTPS with the CA, certificate and admin token kept here (made on first use); "
        "requests then need a token",
    )
    parser.add_argument("--event-window", type=int, default=10_000, help="watch events kept for resuming")
    args = parser.parse_args(argv)
    tune_gc()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        try:
            import uvloop
        except ImportError:
            asyncio.run(serve(args))
        else:
            uvloop.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
