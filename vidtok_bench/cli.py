"""The ``vidtok-bench`` command.

Sub-commands are registered by the modules that implement them: each exposes
``register(subparsers)`` which adds its parser and sets ``func(args) -> int``.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import importlib.util
import os
import signal
import sys
import warnings
from pathlib import Path

from .errors import STORAGE_ERRNOS, BenchError, interrupted_status, on_sigterm, os_error_line

#: modules providing sub-commands, in the order --help lists them
SUBCOMMAND_MODULES = [
    "vidtok_bench.run_cli",
    "vidtok_bench.merge",
    "vidtok_bench.list_cli",
    "vidtok_bench.data_cli",
    "vidtok_bench.profile_cli",
    "vidtok_bench.weights.cli",
    "vidtok_bench.calibrate_cli",
    "vidtok_bench.report.table_cli",
    "vidtok_bench.report.compare",
    "vidtok_bench.report.gate",
    "vidtok_bench.report.rd",
    "vidtok_bench.report.profile_plot",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vidtok-bench",
        description="Benchmark and evaluation harness for video tokenizers.",
        epilog="Run `vidtok-bench COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in SUBCOMMAND_MODULES:  # a missing one is a packaging error: let it raise
        importlib.import_module(mod).register(sub)
    return parser


#: exit status of a process whose output pipe was closed (128 + SIGPIPE), as shells report it
EXIT_BROKEN_PIPE = 141


def main(argv: list[str] | None = None) -> int:
    """Run one command; its output may go to a reader that stops early (``| head``) without a traceback."""
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # a closed pipe surfaces here, not as "Exception ignored" at exit
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as exc:  # Ctrl-C before the command started (its modules loading): nothing to keep yet
        status, how = interrupted_status(exc)
        print(f"vidtok-bench: {how}", file=sys.stderr)
        return status


def _discard_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again (Python docs' recipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced by something without a file descriptor
        pass


@functools.cache
def _own_sources() -> tuple[str, ...]:
    """The folders of this project's code (the package and its plugin packages, wherever they are installed)."""
    folders = []
    for name in ("vidtok_bench", "vidtok_bench.datasets", "vidtok_bench.tokenizers"):
        spec = importlib.util.find_spec(name)
        folders += [str(Path(p).resolve()) + os.sep for p in (spec.submodule_search_locations if spec else None) or ()]
    return tuple(folders)


def format_warning(message, category, filename, lineno, line=None) -> str:
    """The harness's own warnings as ``vidtok-bench: warning: ...`` (no file name and source line, which mean
    nothing to a user); other libraries' warnings keep Python's format, which says where they come from."""
    if not str(Path(filename).resolve()).startswith(_own_sources()):
        return _python_format_warning(message, category, filename, lineno, line)
    text = str(message).removeprefix("vidtok-bench: ")
    return f"vidtok-bench: warning: {text}\n"


_python_format_warning = warnings.formatwarning


def _main(argv: list[str] | None) -> int:
    from .allocator import set_mmap_threshold

    set_mmap_threshold()  # before any large tensor: see allocator.py
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)  # every command unwinds on SIGTERM as on Ctrl-C
    except ValueError:  # called from a thread other than the main one (an embedding program): leave signals alone
        previous = None
    previous_format, warnings.formatwarning = warnings.formatwarning, format_warning
    try:
        return int(args.func(args) or 0)
    except BenchError as exc:
        print(f"vidtok-bench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise  # main() handles a reader that stopped early
    except OSError as exc:  # an output path that cannot be written (a directory, no parent, a full disk): one line
        print(f"vidtok-bench: error: {os_error_line(exc)}", file=sys.stderr)
        return 5 if exc.errno in STORAGE_ERRNOS else 2
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM as errors.Terminated
        status, how = interrupted_status(exc)
        print(f"vidtok-bench: {how}; finished work is kept — rerun the same command to resume", file=sys.stderr)
        return status
    finally:
        warnings.formatwarning = previous_format
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
