"""What ``import vidtok_bench`` sets before torch loads: OpenMP's wait policy and huge pages for large CPU
tensors. Each case runs in a fresh interpreter, since both only act before torch's first allocation."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")

# a 64 MB tensor, touched, then the share of its mapping the kernel backs with huge pages (smaps)
_PROBE = r"""
import json, os, sys
import vidtok_bench, torch
x = torch.ones(64 << 20, dtype=torch.uint8)
start, end = x.data_ptr(), x.data_ptr() + x.numel()
huge = 0
with open("/proc/self/smaps") as f:
    inside = False
    for line in f:
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(v, 16) for v in head.split("-"))
            inside = lo < end and hi > start
        elif inside and head == "AnonHugePages:":
            huge += int(line.split()[1]) * 1024
print(json.dumps({k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE")} | {"huge": huge}))
"""


def _probe(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE")}
    out = subprocess.run([sys.executable, "-c", _PROBE], env={**base, **env}, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _thp_mode() -> str | None:
    try:
        return THP.read_text().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return None


def test_import_sets_defaults_and_an_explicit_value_wins() -> None:
    got = _probe()
    assert got["OMP_WAIT_POLICY"] == "PASSIVE" and got["THP_MEM_ALLOC_ENABLE"] == "1"
    got = _probe(OMP_WAIT_POLICY="ACTIVE", THP_MEM_ALLOC_ENABLE="0")
    assert got["OMP_WAIT_POLICY"] == "ACTIVE" and got["THP_MEM_ALLOC_ENABLE"] == "0"


@pytest.mark.skipif(_thp_mode() != "madvise", reason="needs transparent huge pages in 'madvise' mode (the switch asks for them)")
def test_large_tensors_get_huge_pages_only_with_the_switch() -> None:
    """The default reaches torch's allocator: a 64 MB tensor is (mostly) on 2 MB pages; with the switch off,
    in 'madvise' mode nothing else asks for them."""
    on, off = _probe()["huge"], _probe(THP_MEM_ALLOC_ENABLE="0")["huge"]
    assert on >= 32 << 20, on
    assert off == 0, off


def test_results_record_the_runtime_env() -> None:
    import torch

    from vidtok_bench.environment import RUNTIME_ENV, environment

    env = environment(torch.device("cpu"))["runtime_env"]
    assert set(env) == set(RUNTIME_ENV) and env["THP_MEM_ALLOC_ENABLE"] == os.environ.get("THP_MEM_ALLOC_ENABLE")
