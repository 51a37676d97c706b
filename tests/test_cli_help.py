"""Every sub-command's --help works, and output to a closed pipe ends quietly."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from vidtok_bench import cli

CLI = [sys.executable, "-m", "vidtok_bench.cli"]


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path the parser knows, e.g. (), ("run",), ("weights", "fetch"), found by walking its sub-parsers."""
    out = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += _commands(sub, prefix + (name,))
    return out


COMMANDS = _commands(cli.build_parser())


def test_discovery_finds_the_nested_commands():
    assert {("run",), ("list",), ("gate",), ("weights", "fetch")} <= set(COMMANDS) and len(COMMANDS) >= 10


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "(top)")
def test_help_of_every_command(command):
    proc = subprocess.run([*CLI, *command, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.strip().startswith("usage: vidtok-bench")


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("command", [("weights", "status"), ("--help",)], ids=["weights status", "--help"])
def test_output_to_a_closed_pipe_exits_quietly(command, buffered, tmp_path):
    """`vidtok-bench weights status | head -0`: the reader is gone before the first write.

    Buffered stdout fails at the final flush, unbuffered at the first write (where argparse's
    own help printing ignores the error and exits 0).
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env.update(VIDTOK_BENCH_CACHE=str(tmp_path), **({} if buffered else {"PYTHONUNBUFFERED": "1"}))
    proc = subprocess.Popen([*CLI, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the child is still starting up: every write it makes hits a closed pipe
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) in (0, cli.EXIT_BROKEN_PIPE), err
    assert err == ""


def test_a_missing_subcommand_module_is_an_error_not_a_missing_command(monkeypatch):
    monkeypatch.setattr(cli, "SUBCOMMAND_MODULES", [*cli.SUBCOMMAND_MODULES, "vidtok_bench.no_such_cli"])
    with pytest.raises(ModuleNotFoundError, match="no_such_cli"):
        cli.build_parser()


#: imports that cost 50 ms to seconds each; building the parser (every `--help`) needs none of them
HEAVY = ("torch", "numpy", "pandas", "matplotlib", "diffusers", "hydra", "omegaconf", "av", "scipy", "huggingface_hub")


def test_building_the_parser_imports_nothing_heavy():
    code = ("import sys; from vidtok_bench.cli import build_parser; build_parser(); "
            f"print(' '.join(sorted(m for m in {HEAVY!r} if m in sys.modules)))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [], f"imported while building the parser: {proc.stdout.strip()}"
