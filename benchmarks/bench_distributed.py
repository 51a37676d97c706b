"""Scaling of one evaluation over processes: wall time with 1 process vs 2 torchrun ranks on the CPU
(gloo), both measured in the same run, reported as a ratio; on a GPU host also 1 vs all GPUs (NCCL).

Workload: the synthetic set (12 videos x 34 frames, 288x352 rendered, short side 128, 17-frame clips)
through trilinear_488 with PSNR and SSIM; every process has one torch thread (OMP_NUM_THREADS=1, as
torchrun gives each rank), so the ratio measures processes, not threads. Two figures per setting:
the whole command (interpreter start and imports included) and the evaluation itself
(``run.duration_s`` of the single run vs ``distributed.wall_s`` of rank 0: its whole part, waiting
for the others, gathering and writing the one result). The split results are checked to equal the
single run's before any figure is printed.
Run: pytest benchmarks/bench_distributed.py -s   (env: VIDTOK_BENCH_DIST_VIDEOS=number of videos)
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

VIDEOS = int(os.environ.get("VIDTOK_BENCH_DIST_VIDEOS", 12))
ARGS = ["tokenizer=trilinear_488", "dataset=synthetic", f"dataset.num_videos={VIDEOS}", "dataset.num_frames=34",
        "dataset.size=128", "progress=false", "metrics=[psnr,ssim]"]


def _run(out: Path, nproc: int | None, device: str) -> tuple[float, float]:
    """(command wall s, evaluation s) of one run; ``nproc`` None: a plain single process."""
    exe = shutil.which("vidtok-bench")
    assert exe, "vidtok-bench is not on PATH"
    launcher = [] if nproc is None else [sys.executable, "-m", "torch.distributed.run", "--standalone",
                                         f"--nproc_per_node={nproc}"]
    cmd = [*launcher, exe, "run", *ARGS, f"device={device}", f"output_dir={out}"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    return wall, (res["distributed"] or {}).get("wall_s") or res["run"]["duration_s"]


def _same(a: Path, b: Path) -> None:
    def values(d: Path):
        out = []
        for line in (d / "per_clip.jsonl").read_text().splitlines():
            v = json.loads(line)
            out.append((v["video"], [(c["clip"], c["stats"], c["bits"]) for c in v["clips"]]))
        return sorted(out)

    assert values(a) == values(b)


def _report(label: str, one: tuple[float, float], many: tuple[float, float], n: int) -> None:
    print(f"\n{label}: 1 process {one[0]:.1f} s command / {one[1]:.1f} s evaluation; "
          f"{n} processes {many[0]:.1f} s / {many[1]:.1f} s; "
          f"ratio (1 / {n}) {one[0] / many[0]:.2f} command, {one[1] / many[1]:.2f} evaluation")


def test_cpu_one_vs_two_processes(tmp_path):
    one = _run(tmp_path / "one", None, "cpu")
    two = _run(tmp_path / "two", 2, "cpu")
    _same(tmp_path / "one", tmp_path / "two")
    _report(f"CPU, {VIDEOS} videos, gloo", one, two, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_gpu_one_vs_all_gpus(tmp_path):
    n = torch.cuda.device_count()
    one = _run(tmp_path / "one", 1, "cuda")
    many = _run(tmp_path / "many", n, "cuda")
    _same(tmp_path / "one", tmp_path / "many")
    _report(f"GPU, {VIDEOS} videos, NCCL", one, many, n)
