"""The ``vidtok-bench`` command.

Sub-commands are registered by the modules that implement them: each exposes
``register(subparsers)`` which adds its parser and sets ``func(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from .errors import BenchError

#: modules providing sub-commands, in the order --help lists them
SUBCOMMAND_MODULES = [
    "vidtok_bench.run_cli",
    "vidtok_bench.list_cli",
    "vidtok_bench.profile_cli",
    "vidtok_bench.weights.cli",
    "vidtok_bench.report.table_cli",
    "vidtok_bench.report.compare",
    "vidtok_bench.report.gate",
    "vidtok_bench.report.rd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidtok-bench",
        description="Benchmark and evaluation harness for video tokenizers.",
        epilog="Run `vidtok-bench COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if exc.name == mod:  # sub-command not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"vidtok-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vidtok-bench: interrupted; finished work is kept — rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
