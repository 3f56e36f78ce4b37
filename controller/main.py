"""dpf-controller: `run` the controller, print the `crds`, or `validate` manifests."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="dpf-controller", description=__doc__)
    parser.add_argument("command", choices=["run", "crds", "validate"], help="what to do")
    args, _rest = parser.parse_known_args(argv[:1])
    if args.command == "crds":
        from dpfd.api.cli import crds_main

        return crds_main(argv[1:])
    if args.command == "validate":
        from dpfd.api.cli import validate_main

        return validate_main(argv[1:])
    from controller.app import run_main

    return run_main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
