"""`dpfd dms-install`: flash one DPU through its DMS by hand (mode, BFB, bf.cfg, activate, reboot).

Prints one progress line per step; exits 0 on success, 1 when DMS fails a step, 2 on bad arguments or files,
always with one `dms-install: error: ...` line on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

from dpfd.host.dms.client import DEFAULT_CHUNK, MAX_BF_CFG, DmsClient
from dpfd.host.dms.errors import DmsError
from dpfd.host.dms.sequence import flash
from dpfd.host.dms.tls import TlsFiles

PROG = "dms-install"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The subcommand's options (for `dpfd`'s parser, or the standalone one in `main`)."""
    p.add_argument("--target", required=True, help="DMS address HOST:PORT (DPF: port 9339)")
    p.add_argument("--bfb", required=True, type=Path, help="BFB file; its name is the installed version")
    p.add_argument("--bf-cfg", required=True, type=Path, help=f"rendered bf.cfg (at most {MAX_BF_CFG} bytes)")
    p.add_argument("--name", default="dpu", help="DPU name: the bf.cfg is installed as <name>.cfg (default: dpu)")
    p.add_argument("--insecure", action="store_true", help="plain gRPC without TLS")
    p.add_argument("--ca", type=Path, help="CA certificate that signed the DMS server certificate")
    p.add_argument("--cert", type=Path, help="client certificate (PEM)")
    p.add_argument("--key", type=Path, help="client key (PEM)")
    p.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK, help="bytes per OS.Install message")
    p.add_argument("--reboot-timeout", type=float, default=1800.0, help="seconds to wait for the reboot")
    p.add_argument("--poll", type=float, default=3.0, help="seconds between RebootStatus polls")


def _tls(args: argparse.Namespace) -> TlsFiles | None:
    given = [args.ca, args.cert, args.key]
    if args.insecure:
        if any(given):
            raise ValueError("--insecure cannot be combined with --ca/--cert/--key")
        return None
    if not all(given):
        raise ValueError("give --ca, --cert and --key for mTLS, or --insecure")
    tls = TlsFiles(args.ca, args.cert, args.key)
    tls.read()  # names an unreadable file now, before anything is sent
    return tls


def _bf_cfg(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read bf.cfg {path}: {e.strerror or e}") from None
    if len(data) > MAX_BF_CFG:
        raise ValueError(f"bf.cfg {path} is {len(data)} bytes, over DMS's limit of {MAX_BF_CFG} bytes")
    return data


async def _run(args: argparse.Namespace, tls: TlsFiles | None, bf_cfg: bytes) -> None:
    def say(line: str) -> None:
        print(f"{PROG}: {args.name}: {line}", flush=True)

    async with DmsClient(args.target, tls, name=args.name) as dms:
        result = await flash(
            dms, args.name, args.bfb, bf_cfg, report=say, chunk_size=args.chunk_size,
            reboot_poll=args.poll, reboot_timeout=args.reboot_timeout,
        )  # fmt: skip
    say(f"done: running {result.activated}")


def run(args: argparse.Namespace) -> int:
    """Run the parsed subcommand; returns the exit code."""
    try:
        tls = _tls(args)
        bf_cfg = _bf_cfg(args.bf_cfg)
        if not args.bfb.is_file():
            raise ValueError(f"BFB {args.bfb} is not a readable file")
        asyncio.run(_run(args, tls, bf_cfg))
    except ValueError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except DmsError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. the BFB became unreadable mid-transfer
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`dpfd dms-install ...` (argv without the subcommand name)."""
    parser = argparse.ArgumentParser(prog=f"dpfd {PROG}", description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
