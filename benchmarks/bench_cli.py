"""CLI start-up: wall time of `vidtok-bench [COMMAND] --help` in a fresh process, as a ratio to
`python -c pass` measured in the same run (so figures from different or busy machines compare).

`--help` builds the whole parser, i.e. imports every sub-command module; none of them may import
torch, pandas, matplotlib, diffusers, hydra or av at module level (the actions import what they
need). Each command fails here when its ratio exceeds MAX_RATIO: about 3-6 x is normal, an
eager `import torch` alone makes it 20-50 x.
Run: pytest benchmarks/bench_cli.py --benchmark-only -s
"""
from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from vidtok_bench.cli import build_parser

MAX_RATIO = 12.0
ROUNDS = 5
RESULTS: dict[str, float] = {}  # command -> mean seconds


def _top_commands() -> list[str]:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices)
    return []


def _spawn(args: list[str]) -> None:
    proc = subprocess.run([sys.executable, *args], capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    base = RESULTS.get("python")
    if base:
        print(f"\npython -c pass: {base * 1e3:.0f} ms")
        for name, t in RESULTS.items():
            if name != "python":
                label = name if name in EARLY_ANSWERS else f"{name} --help"
                print(f"vidtok-bench {label}: {t * 1e3:.0f} ms ({t / base:.1f} x python -c pass)")


def test_python_startup(benchmark) -> None:
    benchmark.pedantic(_spawn, args=(["-c", "pass"],), rounds=ROUNDS, warmup_rounds=1)
    RESULTS["python"] = benchmark.stats.stats.mean


@pytest.mark.parametrize("command", ["", *_top_commands()], ids=lambda c: c or "(top)")
def test_help(benchmark, command: str) -> None:
    args = ["-m", "vidtok_bench.cli", *([command] if command else []), "--help"]
    benchmark.pedantic(_spawn, args=(args,), rounds=ROUNDS, warmup_rounds=1)
    t = RESULTS[command or "(top)"] = benchmark.stats.stats.mean
    base = RESULTS.get("python")
    if base:
        benchmark.extra_info["ratio_to_python"] = round(t / base, 2)
        assert t / base < MAX_RATIO, f"`vidtok-bench {command} --help` takes {t / base:.1f} x python start-up"


#: answers that must come before torch is imported: configuration errors and listings of configs
EARLY_ANSWERS = {
    "run limit=abc": 2, "run tokenizer=nope": 2, "run batch_size=0": 2, "run --cfg tokenizer=h264": 0,
}


@pytest.mark.parametrize("command", list(EARLY_ANSWERS))
def test_configuration_answers_fast(benchmark, command: str) -> None:
    def spawn() -> None:
        proc = subprocess.run([sys.executable, "-m", "vidtok_bench.cli", *command.split()], capture_output=True, timeout=120)
        assert proc.returncode == EARLY_ANSWERS[command], proc.stderr.decode()[-2000:]
        assert b"Traceback" not in proc.stderr

    benchmark.pedantic(spawn, rounds=ROUNDS, warmup_rounds=1)
    t = RESULTS[command] = benchmark.stats.stats.mean
    base = RESULTS.get("python")
    if base:
        benchmark.extra_info["ratio_to_python"] = round(t / base, 2)
        assert t / base < 3 * MAX_RATIO, f"`vidtok-bench {command}` takes {t / base:.1f} x python start-up"
