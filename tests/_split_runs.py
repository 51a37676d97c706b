"""Helpers shared by the split-run tests (torchrun ranks, shards and merge, sweeps): tiny synthetic
runs, and the comparison of a combined run with a single-process run of the same configuration."""
from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

from vidtok_bench import results as R

HERE = Path(__file__).resolve().parent
ENTRY = HERE / "_dist_entry.py"

#: 32x32 synthetic videos of 17 frames (one clip each) through the weight-free trilinear tokenizer
TINY = ["tokenizer=trilinear_488", "dataset=synthetic", "dataset.num_frames=17", "dataset.size=32", "dataset.height=32",
        "dataset.width=32", "device=cpu", "progress=false"]
#: FVD over 9 frames per clip: I3D on the CPU stays quick
FVD_9 = ["protocol.metric_options.fvd.max_frames=9"]


def cli(*args: str) -> int:
    from vidtok_bench.cli import main

    return main(list(args))


@contextlib.contextmanager
def one_thread():
    """One CPU thread, as each torchrun rank has (OMP_NUM_THREADS=1): CPU convolutions (I3D) round
    differently with another thread count, so runs compared bit for bit use the same."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def single(out: Path, *extra: str) -> Path:
    """The single-process reference run."""
    with one_thread():
        assert cli("run", *TINY, *extra, f"output_dir={out}") == 0
    return out


def torchrun(n: int, out: Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 600):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}", str(ENTRY),
           "run", *TINY, *extra, f"output_dir={out}"]
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full, cwd=HERE.parent)


def records(run_dir: Path) -> list[dict]:
    """per_clip.jsonl as the last record per video, timings dropped (they are measurements, not values)."""
    latest: dict[str, dict] = {}
    for line in (run_dir / R.PER_CLIP_FILE).read_text().splitlines():
        d = json.loads(line)
        for c in d["clips"]:
            c.pop("encode_s")
            c.pop("decode_s")
        latest[d["video"]] = d
    return list(latest.values())


def assert_same_values(combined: Path, single_dir: Path) -> tuple[R.Result, R.Result]:
    """Every per-clip and per-video value identical, every metric exactly equal (FVD within 1e-9 relative)."""
    got, want = records(combined), records(single_dir)
    assert [r["video"] for r in got] == [r["video"] for r in want]
    assert got == want
    assert (combined / R.PER_VIDEO_FILE).read_text() == (single_dir / R.PER_VIDEO_FILE).read_text()
    a, b = R.load_result(combined), R.load_result(single_dir)
    assert set(a.metrics) == set(b.metrics)
    for name, m in b.metrics.items():
        if m.value is None or a.metrics[name].value is None:  # e.g. codebook use of a continuous tokenizer
            assert a.metrics[name].value is m.value is None, name
        elif m.info.kind == "set":
            assert math.isclose(a.metrics[name].value, m.value, rel_tol=1e-9), name
        else:
            assert a.metrics[name].value == m.value, name
        assert (a.metrics[name].clips, a.metrics[name].frames, a.metrics[name].videos) == (m.clips, m.frames, m.videos)
    assert a.bits_per_pixel == b.bits_per_pixel
    assert a.frames == b.frames
    assert (a.videos.total, a.videos.ok, a.videos.failed) == (b.videos.total, b.videos.ok, b.videos.failed)
    assert a.fingerprint == b.fingerprint
    return a, b
