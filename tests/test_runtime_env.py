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


# malloc 24 MB, free it, malloc 24 MB again: with glibc's dynamic threshold the second block comes from the
# heap (the free raised the threshold to 24 MB); with the CLI's fixed threshold it is mmapped (mallinfo2.hblkhd)
_MALLOC_PROBE = r"""
import ctypes, ctypes.util, json, sys
fixed = sys.argv[1] == "fixed"
if fixed:
    from vidtok_bench.allocator import set_mmap_threshold
    applied = set_mmap_threshold()
else:
    applied = None
libc = ctypes.CDLL(ctypes.util.find_library("c"))
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
p = libc.malloc(24 << 20); libc.free(p)
q = libc.malloc(24 << 20)
print(json.dumps({"applied": applied, "mmapped": libc.mallinfo2().hblkhd}))
libc.free(q)
"""


def _glibc_mallinfo2() -> bool:
    import ctypes
    import ctypes.util

    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c")), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
def test_cli_fixes_the_mmap_threshold_so_large_blocks_go_back() -> None:
    def probe(mode: str) -> dict:
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_MMAP_THRESHOLD_"}
        out = subprocess.run([sys.executable, "-c", _MALLOC_PROBE, mode], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    dynamic, fixed = probe("dynamic"), probe("fixed")
    assert dynamic["mmapped"] < 24 << 20  # glibc's default: the freed block raised the threshold
    from vidtok_bench.allocator import DEFAULT_BYTES

    assert fixed["applied"] == DEFAULT_BYTES and fixed["mmapped"] >= 24 << 20


def test_mmap_threshold_follows_the_environment(monkeypatch) -> None:
    from vidtok_bench import allocator

    monkeypatch.delenv(allocator.ENV, raising=False)
    assert allocator.set_mmap_threshold() in (allocator.DEFAULT_BYTES, None)  # None: not glibc
    assert os.environ[allocator.ENV] == str(allocator.DEFAULT_BYTES)
    monkeypatch.setenv(allocator.ENV, "not-a-number")
    assert allocator.set_mmap_threshold() is None
    monkeypatch.setenv(allocator.ENV, str(32 << 20))
    assert allocator.set_mmap_threshold() in (32 << 20, None)
    monkeypatch.setenv(allocator.ENV, str(allocator.DEFAULT_BYTES))
    allocator.set_mmap_threshold()  # leave this test process as the CLI would


def test_release_free_memory_hands_freed_heap_blocks_back() -> None:
    """Blocks under the mmap threshold stay in the heap when freed (resident); release_free_memory gives their
    pages back: in a fresh process, 200 MB of freed 1 MB blocks leave RSS high until it is called."""
    import subprocess
    import sys

    code = (
        "import ctypes, sys\n"
        "from vidtok_bench import allocator\n"
        "libc = ctypes.CDLL(None)\n"
        "libc.malloc.restype = ctypes.c_void_p; libc.free.argtypes = [ctypes.c_void_p]\n"
        "def rss(): return int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0]) // 1024\n"
        "assert allocator.set_mmap_threshold() == allocator.DEFAULT_BYTES > 1 << 20  # as the CLI: 1 MB blocks come from the heap\n"
        "r0 = rss()\n"
        "blocks = [libc.malloc(1 << 20) for _ in range(200)]\n"
        "for b in blocks: ctypes.memset(b, 1, 1 << 20)\n"
        "keep = libc.malloc(1 << 19)  # above them all (no free chunk fits it): the heap cannot shrink by itself\n"
        "for b in blocks: libc.free(b)\n"
        "r1 = rss()\n"
        "assert allocator.release_free_memory() is True\n"
        "r2 = rss()\n"
        "print(r0, r1, r2)\n"
        "assert r1 - r0 > 150 and r1 - r2 > 150, (r0, r1, r2)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if "not glibc" in r.stderr:
        pytest.skip("not glibc")
    assert r.returncode == 0, r.stdout + r.stderr[-2000:]


def test_release_after_batch_acts_on_cpu_runs_only(monkeypatch) -> None:
    import torch

    from vidtok_bench import allocator

    calls: list[int] = []
    monkeypatch.setattr(allocator, "release_free_memory", lambda: calls.append(1) or True)
    assert allocator.release_after_batch(torch.device("cpu")) is True and calls == [1]
    assert allocator.release_after_batch(torch.device("meta")) is False and calls == [1]
