"""`dpf-controller crds` and `dpf-controller validate`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dpfd.api.crds import crd_files, crds_yaml
from dpfd.api.validation import Problem, validate_documents

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed the usage error
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def crds_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dpf-controller crds", description="Print the DPF CRDs, or write one file per CRD."
    )
    parser.add_argument("--out-dir", type=Path, help="write <group>_<plural>.yaml files here instead of printing")
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    if args.out_dir is None:
        sys.stdout.write(crds_yaml())
        return EXIT_OK
    try:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in crd_files().items():
            (args.out_dir / name).write_text(text)
    except OSError as exc:
        print(f"dpf-controller crds: cannot write {args.out_dir}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _manifest_files(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(p for p in target.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES)
    return [target]


def _read(target: str) -> list[tuple[str, str]] | str:
    """(source, text) for a file, stdin ("-") or each manifest under a directory; or an error message."""
    if target == "-":
        return [("<stdin>", sys.stdin.read())]
    path = Path(target)
    if not path.exists():
        return f"{target}: no such file or directory"
    out: list[tuple[str, str]] = []
    for file in _manifest_files(path):
        try:
            out.append((str(file), file.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            return f"{file}: cannot read: {exc}"
    return out


def validate_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dpf-controller validate",
        description="Check DPF manifests as DPF's API server would. Exit 0: valid, 1: problems, 2: usage.",
    )
    parser.add_argument(
        "-f",
        "--filename",
        action="append",
        required=True,
        help="a file, a directory, or - for stdin; repeatable",
    )
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    problems: list[Problem] = []
    for target in args.filename:
        sources = _read(target)
        if isinstance(sources, str):
            print(f"dpf-controller validate: {sources}", file=sys.stderr)
            return EXIT_USAGE
        for source, text in sources:
            problems.extend(validate_documents(text, source))
    for problem in problems:
        print(problem.format())
    if problems:
        print(f"{len(problems)} problem(s) found", file=sys.stderr)
        return EXIT_PROBLEMS
    return EXIT_OK
