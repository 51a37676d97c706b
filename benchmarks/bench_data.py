"""Data pipeline throughput and memory: decode -> 30 fps stride sampling -> resize 256 (bilinear,
antialias, float) + centre crop -> 17-frame clips, on the shared 1080p and 720p clips.

Each file's pipeline frames/s is reported as a ratio to PyAV's bare threaded decode of the same
file (``thread_type="AUTO"``, frames neither converted nor resized) measured in the same test,
and, for reference, to decode + RGB conversion. Peak RSS of the whole pipeline over the 1080p
clip is measured in a fresh subprocess (``VmHWM``, else ``ru_maxrss``), beside subprocesses that only import
torch and PyAV and that only decode (threaded), so the pipeline's own share is visible.
Run: pytest benchmarks/bench_data.py --benchmark-only -s
(env: VIDTOK_BENCH_VIDEOS=folder of the clips, VIDTOK_BENCH_THREADS=torch threads, VIDTOK_BENCH_WORKERS=resize threads)
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import av
import pytest
import torch

from vidtok_bench.data import Preprocess
from vidtok_bench.video.decode import decode_clips, default_workers

VIDEOS = Path(os.environ.get("VIDTOK_BENCH_VIDEOS") or Path(__file__).resolve().parents[1].parent / "shared" / "videos")
FILES = ["smpte_bars_1920x1080.mp4", "squirrel_1280x720.mp4"]
PP = Preprocess(fps=30, sampling="stride", size=256, crop="center", resize="bilinear_antialias", clip_len=17)
# torch intra-op threads: 1 by default, the pipeline parallelises over frames instead
THREADS = int(os.environ.get("VIDTOK_BENCH_THREADS", 1))
WORKERS = int(os.environ.get("VIDTOK_BENCH_WORKERS", default_workers()))  # resize threads


@pytest.fixture(scope="module", autouse=True)
def _setup():
    if not VIDEOS.is_dir():
        pytest.skip(f"shared videos not found at {VIDEOS}")
    torch.set_num_threads(THREADS)


def bare_decode(path: Path) -> int:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        return sum(1 for _ in c.decode(s))


def decode_rgb(path: Path) -> int:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        return sum(1 for f in c.decode(s) if f.to_ndarray(format="rgb24") is not None)


def pipeline(path: Path) -> int:
    return sum(c.valid for c in decode_clips(path, PP, workers=WORKERS))


def best_fps(fn, path: Path, rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        n = fn(path)
        best = min(best, time.perf_counter() - t)
    return n / best


@pytest.mark.parametrize("name", FILES)
def test_pipeline_vs_bare_decode(benchmark, name):
    path = VIDEOS / name
    n = pipeline(path)  # warm-up, and the frame count
    assert n == bare_decode(path)  # 25 fps sources at fps=30 stride keep every frame
    base = best_fps(bare_decode, path)
    rgb = best_fps(decode_rgb, path)
    benchmark.pedantic(pipeline, args=(path,), rounds=3, iterations=1)
    fps = n / benchmark.stats.stats.min
    info = {
        "frames": n, "pipeline_fps": round(fps, 1), "bare_decode_fps": round(base, 1), "decode_rgb_fps": round(rgb, 1),
        "ratio_to_bare_decode": round(fps / base, 3), "ratio_to_decode_rgb": round(fps / rgb, 3),
        "torch_threads": THREADS, "resize_workers": WORKERS, "cpus": os.cpu_count(),
    }
    benchmark.extra_info.update(info)
    print(f"\n{name}: {json.dumps(info)}")


_RSS = """
import resource, sys, torch, av

def peak():
    # VmHWM is this process's own peak; ru_maxrss also counts the parent's pages copied at fork
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

torch.set_num_threads({threads})
if {run} == "decode":
    c = av.open(sys.argv[1]); s = c.streams.video[0]; s.thread_type = "AUTO"
    assert sum(1 for _ in c.decode(s)) > 0
elif {run}:
    from vidtok_bench.data import Preprocess
    from vidtok_bench.video.decode import decode_clips
    pp = Preprocess(**{pp!r})
    n = sum(c.valid for c in decode_clips(sys.argv[1], pp, workers={workers}))
    assert n > 0
print(peak())
"""


def peak_rss(run: bool | str, path: Path) -> int:
    code = _RSS.format(threads=THREADS, run=repr(run), pp=PP.as_dict(), workers=WORKERS)
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_peak_rss_1080p(benchmark):
    path = VIDEOS / "smpte_bars_1920x1080.mp4"
    imports = peak_rss(False, path)
    decode = peak_rss("decode", path)
    total = benchmark.pedantic(peak_rss, args=(True, path), rounds=1, iterations=1)
    info = {"peak_rss_mb": round(total / 2**20, 1), "imports_only_rss_mb": round(imports / 2**20, 1),
            "bare_decode_rss_mb": round(decode / 2**20, 1), "pipeline_share_mb": round((total - imports) / 2**20, 1),
            "resize_workers": WORKERS}
    benchmark.extra_info.update(info)
    print(f"\nsmpte_bars_1920x1080.mp4 peak RSS: {json.dumps(info)}")
    assert total < 1 << 30  # aim: <= 1 GB
