"""dpf-sim: the whole of dpf on one machine, with emulated BlueFields and an emulated Kubernetes API.

dpf-sim up --manifests DIR --state-dir DIR    start everything, apply the manifests, show progress; Ctrl-C stops
           [--bfb-port PORT] [--flash-seconds S]
dpf-sim down --state-dir DIR                  stop what `up` started in that state dir
dpf-sim bluefield --listen HOST:PORT          one emulated BlueField (DMS and DPU OS) on its own
dpf-sim status --state-dir DIR [-o json]      each emulated DPU under DIR: installs, activations, reboots, dpfd
dpf-sim exec NAME --state-dir DIR [--in wire|host] -- CMD
                                              run CMD in an emulated host's or DPU's environment: its dpfd's admin
                                              socket and etcd for dpfctl; a DPU's OVS and namespace
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dpfd.sim.processes import stop_recorded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dpf-sim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the simulated fleet and apply manifests")
    up.add_argument("--manifests", type=Path, required=True, help="folder of YAML manifests (CRs and Nodes)")
    up.add_argument("--state-dir", type=Path, required=True, help="where logs, kubeconfigs and state go")
    up.add_argument("--quiet", action="store_true", help="do not print progress")
    up.add_argument(
        "--bfb-port",
        type=int,
        default=18080,
        help="port of the synthetic BFB server: BFB URLs http://127.0.0.1:PORT/<name>.bfb (default 18080)",
    )
    up.add_argument(
        "--flash-seconds",
        type=float,
        default=10.0,
        help="how long an emulated BlueField takes to install a BFB and reboot (default 10)",
    )
    up.add_argument(
        "--dataplane",
        choices=("off", "ovs"),
        default="off",
        help="ovs: every emulated BlueField gets its own Open vSwitch with br-sfc (default off)",
    )
    up.add_argument("--no-dpu-os", action="store_true",
                    help="flashed DPUs do not boot a dpfd (nothing joins the DPU clusters)")  # fmt: skip
    down = sub.add_parser("down", help="stop what `up` started")
    down.add_argument("--state-dir", type=Path, required=True)
    from dpfd.sim.bluefield import standalone

    bluefield = sub.add_parser("bluefield", help="run one emulated BlueField (DMS server and DPU OS)")
    standalone.add_bluefield_arguments(bluefield)
    status = sub.add_parser("status", help="show each emulated DPU under a state dir")
    status.add_argument("--state-dir", type=Path, required=True)
    status.add_argument("-o", "--output", choices=("table", "json"), default="table")
    run_in = sub.add_parser("exec", help="run a command in an emulated host's or DPU's environment")
    run_in.add_argument("name", help="a host's name, e.g. worker-1, or a DPU's, e.g. worker-1-0000-03-00")
    run_in.add_argument("--state-dir", type=Path, required=True)
    run_in.add_argument("--in", dest="side", choices=("dpu", "wire", "host"), default="dpu",
                        help="dpu: its OVS's namespace (default); wire: where p0/p1 are cabled to (wire0, wire1); "
                        "host: its host's PFs (facing pf0hpf, pf1hpf)")  # fmt: skip
    run_in.epilog = (
        "The command follows `--`: dpf-sim exec NAME --state-dir DIR -- CMD [ARGS...]. It gets "
        "DPF_ADMIN_SOCKET, DPF_ETCD_ENDPOINTS and DPFD_CONFIG of NAME's dpfd, so `-- dpfctl status` asks it."
    )
    argv = sys.argv[1:] if argv is None else argv
    # `exec`'s command is everything after `--`, options and all: split it off before parsing.
    command: list[str] = []
    if argv[:1] == ["exec"] and "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]
    args = parser.parse_args(argv)

    if args.command == "bluefield":
        return standalone.run(args)
    if args.command == "status":
        return _status(args.state_dir, args.output)
    if args.command == "exec":
        from dpfd.sim.dpu_exec import ExecError, run

        try:
            return run(args.state_dir.resolve(), args.name, command, args.side)
        except (ExecError, OSError) as e:
            print(f"dpf-sim exec: {e}", file=sys.stderr)
            return 2

    if args.command == "down":
        stopped = stop_recorded(args.state_dir.resolve())
        print(f"stopped {len(stopped)} processes" if stopped else "nothing was running")
        return 0
    from dpfd.sim.fleet import Fleet, FleetOptions, SimError

    if not 1 <= args.bfb_port <= 65535:
        parser.error(f"--bfb-port {args.bfb_port}: not a TCP port")
    if args.flash_seconds < 0:
        parser.error(f"--flash-seconds {args.flash_seconds:g}: must not be negative")
    options = FleetOptions(
        bfb_port=args.bfb_port,
        flash_seconds=args.flash_seconds,
        dpu_os="off" if args.no_dpu_os else "dpfd",
        dataplane=args.dataplane,
    )
    fleet = Fleet(args.manifests.resolve(), args.state_dir.resolve(), quiet=args.quiet, options=options)
    try:
        import uvloop

        return uvloop.run(fleet.run())
    except SimError as e:
        print(f"dpf-sim: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _status(state_dir: Path, output: str) -> int:
    from dpfd.sim.bluefield.status import collect, render

    if not state_dir.is_dir():
        print(f"dpf-sim status: {state_dir} is not a directory", file=sys.stderr)
        return 2
    rows = collect(state_dir.resolve())
    if not rows and output != "json":
        print(f"no emulated DPUs under {state_dir}")
        return 0
    print(render(rows, output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
