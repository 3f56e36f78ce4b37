"""dpfctl: the operator's command line for dpf. It asks the local dpfd over its admin socket, or reads the fleet's
intents and reports from etcd.

  dpfctl status                                  this dpfd: etcd session, intents, drain, gossip
  dpfctl get dpus [-w [--until PHASE]]           the DPUs this host provisions (--fleet: every DPU in etcd)
  dpfctl get bfbs|dpusets                        the fleet's BFBs (with their hosts' downloads) and DPUSets, from etcd
  dpfctl get intents|reports                     this node's (--fleet or --node NODE: from etcd)
  dpfctl get members                             the dpfds registered in etcd
  dpfctl describe dpu NAME [-w [--until PHASE]]  phases with times, conditions, recent events
  dpfctl dpu retry|reflash NAME                  retry a DPU's failed phase now; flash it again from the start
  dpfctl drain [--reason TEXT] | uncordon        start no new provisioning on this host; undo
  dpfctl logs [-f] [--tail N]                    this dpfd's log lines
  dpfctl events [--replay]                       this dpfd's events as they happen
  dpfctl members                                 this dpfd's gossip view
  dpfctl completion bash|zsh                     shell completion

Every command takes -o table|json|yaml. The daemon: --socket, else $DPF_ADMIN_SOCKET, else /run/dpfd/admin.sock
(or --address HOST:PORT with --tls-ca/--tls-cert/--tls-key for its mTLS listener). etcd: --etcd, else
$DPF_ETCD_ENDPOINTS, else the etcd.endpoints of /etc/dpf/dpfd.yaml.

Exit codes: 0 done; 1 the daemon or etcd could not be reached, or the request failed; 2 usage or configuration
error; 3 not found; 130 interrupted. Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

from dpfd.cli import completion, fleet, members, views
from dpfd.cli.client import AdminClient, Target
from dpfd.cli.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, CliError
from dpfd.cli.output import FORMATS, dump, proto_dict
from dpfd.cli.watch import Watch
from dpfd.proto.dpf.admin.v1 import admin_pb2

LOCAL_KINDS = ("dpus", "intents", "reports")  # what `get` asks the local daemon for unless told --fleet
FLEET_ONLY = ("bfbs", "dpusets", "members")
GET_KINDS = (*LOCAL_KINDS, *FLEET_ONLY)
DPU_ACTIONS = ("retry", "reflash")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpfctl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    # Where to connect, before the command (`dpfctl --etcd X get members`) or after it (`dpfctl get members --etcd
    # X`); the copies after it default to SUPPRESS so they do not undo a value given before.
    _daemon_options(parser, None)
    _etcd_options(parser, None)
    daemon = argparse.ArgumentParser(add_help=False)
    _daemon_options(daemon, argparse.SUPPRESS)
    etcd = argparse.ArgumentParser(add_help=False)
    _etcd_options(etcd, argparse.SUPPRESS)
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("-o", "--output", choices=FORMATS, default=argparse.SUPPRESS, help="table (default), json, yaml")
    watch = argparse.ArgumentParser(add_help=False)
    watch.add_argument("-w", "--watch", action="store_true", help="keep it current (progress bars on a terminal)")
    watch.add_argument("--until", metavar="PHASE", help="with -w: stop once it is (all are) in this phase")
    parser.set_defaults(output="table")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("status", parents=[daemon, out], help="this dpfd: etcd session, intents, drain, gossip")
    get = sub.add_parser("get", parents=[daemon, etcd, out, watch], help="list dpus, bfbs, dpusets, intents, ...")
    get.add_argument("what", choices=GET_KINDS, help="what to list")
    get.add_argument("--fleet", action="store_true", help="from etcd, every node's (dpus, intents, reports)")
    get.add_argument("--node", help="from etcd, only this node's")
    describe = sub.add_parser("describe", parents=[daemon, out, watch], help="one DPU in full")
    describe.add_argument("kind", choices=("dpu",), help="what to describe")
    describe.add_argument("name", help="the DPU's name")
    describe.add_argument("-n", "--namespace", default="", help="when the name alone is ambiguous")
    dpu = sub.add_parser("dpu", help="ask for something about one DPU")
    dpu_sub = dpu.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (("retry", "retry its failed phase now"), ("reflash", "flash it again from the start")):
        p = dpu_sub.add_parser(action, parents=[daemon, out], help=text)
        p.add_argument("name", help="the DPU's name")
        p.add_argument("-n", "--namespace", default="", help="when the name alone is ambiguous")
    drain = sub.add_parser("drain", parents=[daemon, out], help="start no new provisioning work on this host")
    drain.add_argument("--reason", default="", help="shown in status")
    drain.add_argument("--undo", action="store_true", help="the same as uncordon")
    sub.add_parser("uncordon", parents=[daemon, out], help="undo drain")
    logs = sub.add_parser("logs", parents=[daemon, out], help="this dpfd's log lines")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("--tail", type=int, default=0, help="only the last N lines (default: all kept)")
    events = sub.add_parser("events", parents=[daemon, out], help="this dpfd's events as they happen")
    events.add_argument("--replay", action="store_true", help="first the recent events it still holds")
    events.add_argument("--kind", default="", help="only about objects of this kind (e.g. DPU)")
    events.add_argument("--name", default="", help="only about objects or members of this name")
    sub.add_parser("members", parents=[daemon, out], help="this dpfd's gossip view")
    comp = sub.add_parser("completion", help="print shell completion")
    comp.add_argument("shell", choices=completion.SHELLS)
    return parser


def _daemon_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--socket", default=default, help="the dpfd admin socket")
    parser.add_argument("--address", default=default, help="HOST:PORT of a dpfd's mTLS admin listener")
    parser.add_argument("--tls-ca", default=default, help="CA that signed the daemon's certificate")
    parser.add_argument("--tls-cert", default=default, help="our client certificate")
    parser.add_argument("--tls-key", default=default, help="our client key")
    parser.add_argument("--timeout", type=float, default=5.0 if default is None else default,
                        help="seconds per request (default 5)")  # fmt: skip


def _etcd_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--etcd", default=default, help="etcd endpoints, comma-separated")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(parser, args)
    except CliError as e:
        print(f"dpfctl: {e.message}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `dpfctl logs | head`
        return EXIT_OK


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    command: str = args.command
    if command == "completion":
        print(completion.script(parser, args.shell), end="")
        return EXIT_OK
    if command == "get" and (args.what in FLEET_ONLY or args.fleet or args.node or (args.etcd and not args.watch)):
        return get_fleet(args)
    target = Target.from_args(args.socket, args.address, args.tls_ca, args.tls_cert, args.tls_key)
    with AdminClient(target, args.timeout) as client:
        handler = HANDLERS[command]
        return handler(client, args)


def get_fleet(args: argparse.Namespace) -> int:
    if args.watch:
        raise CliError(f"-w watches the local dpfd; get {args.what} from etcd cannot be watched", EXIT_USAGE)
    records = asyncio.run(fleet.fetch(fleet.endpoints_from(args.etcd), args.what, args.node))
    print(fleet.render_table(args.what, records) if args.output == "table" else dump(records, args.output))
    return EXIT_OK


# --- the local daemon ---------------------------------------------------------------------------------------------


def status(client: AdminClient, args: argparse.Namespace) -> int:
    print(views.status(client.call("GetStatus", admin_pb2.GetStatusRequest()), args.output))
    return EXIT_OK


def get(client: AdminClient, args: argparse.Namespace) -> int:
    if args.what == "dpus":

        def listing() -> tuple[str, list[admin_pb2.Dpu]]:
            found = list(client.call("ListDpus", admin_pb2.ListDpusRequest()).dpus)
            return views.dpus(found, args.output), found

        if args.watch:
            return Watch(client, listing, output=args.output, until=args.until).run()
        print(listing()[0])
        return EXIT_OK
    if args.watch:
        raise CliError(f"-w watches DPUs; get {args.what} cannot be watched", EXIT_USAGE)
    reply = client.call("ListIntents", admin_pb2.ListIntentsRequest())
    print(views.intents(list(reply.intents), args.output, args.what))
    return EXIT_OK


def describe(client: AdminClient, args: argparse.Namespace) -> int:
    request = admin_pb2.GetDpuRequest(name=args.name, namespace=args.namespace)

    def one() -> tuple[str, list[admin_pb2.Dpu]]:
        dpu = client.call("GetDpu", request)
        return views.describe(dpu, args.output), [dpu]

    if args.watch:
        return Watch(client, one, name=args.name, output=args.output, until=args.until).run()
    print(one()[0])
    return EXIT_OK


def dpu_action(client: AdminClient, args: argparse.Namespace) -> int:
    method = {"retry": "RetryDpu", "reflash": "ReflashDpu"}[args.action]
    reply = client.call(method, admin_pb2.DpuActionRequest(name=args.name, namespace=args.namespace))
    print(reply.message if args.output == "table" else dump(proto_dict(reply), args.output))
    return EXIT_OK


def drain(client: AdminClient, args: argparse.Namespace) -> int:
    if args.command == "uncordon" or getattr(args, "undo", False):
        reply = client.call("Undrain", admin_pb2.UndrainRequest())
    else:
        reply = client.call("Drain", admin_pb2.DrainRequest(reason=args.reason))
    text = f"{reply.node}: {views.drain_text(reply)}"
    print(text if args.output == "table" else dump(proto_dict(reply), args.output))
    return EXIT_OK


def logs(client: AdminClient, args: argparse.Namespace) -> int:
    if args.tail < 0:
        raise CliError("--tail must not be negative", EXIT_USAGE)
    request = admin_pb2.StreamLogsRequest(follow=args.follow, tail=args.tail)
    for record in client.stream("StreamLogs", request):
        print(views.log_line(record, args.output), flush=True)
    return EXIT_OK


def events(client: AdminClient, args: argparse.Namespace) -> int:
    request = admin_pb2.WatchEventsRequest(replay=args.replay, kind=args.kind, name=args.name)
    for event in client.stream("WatchEvents", request):
        if event.type != "synced":
            print(views.event_line(event, args.output), flush=True)
    return EXIT_OK


def gossip_members(client: AdminClient, args: argparse.Namespace) -> int:
    reply = client.call("ListMembers", admin_pb2.ListMembersRequest())
    print(members.render(list(reply.members), args.output))
    return EXIT_OK


HANDLERS: dict[str, Callable[[AdminClient, argparse.Namespace], int]] = {
    "status": status,
    "get": get,
    "describe": describe,
    "dpu": dpu_action,
    "drain": drain,
    "uncordon": drain,
    "logs": logs,
    "events": events,
    "members": gossip_members,
}


if __name__ == "__main__":
    sys.exit(main())
