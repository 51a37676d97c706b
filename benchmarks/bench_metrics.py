"""Metric network throughput on CPU fp32 (2 threads): I3D clips/s at 16x224x224 and LPIPS
frames/s at 256x256 (AlexNet and VGG), each also as a ratio to a fixed baseline measured in
the same run (one 3x3 64->64 conv over a 256x256 image), so figures from different machines
can be compared. Weights come from ../shared/weights when present, else from the cache.
Run: pytest benchmarks/bench_metrics.py --benchmark-only -s
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

SHARED_WEIGHTS = Path(__file__).resolve().parents[1].parent / "shared" / "weights"
RESULTS: dict[str, float] = {}  # name -> seconds per call


@pytest.fixture(scope="module", autouse=True)
def _setup(tmp_path_factory):
    torch.set_num_threads(2)
    from vidtok_bench.weights import manager

    old = os.environ.get(manager.CACHE_ENV)
    if SHARED_WEIGHTS.is_dir():
        os.environ[manager.CACHE_ENV] = str(tmp_path_factory.mktemp("weights"))
        manager.import_path(SHARED_WEIGHTS, progress=None)
    yield
    if old is None:
        os.environ.pop(manager.CACHE_ENV, None)
    else:
        os.environ[manager.CACHE_ENV] = old
    _report()


def _record(name: str, benchmark) -> None:
    RESULTS[name] = benchmark.stats.stats.mean


def test_baseline_conv(benchmark) -> None:
    x, w = torch.randn(1, 64, 256, 256), torch.randn(64, 64, 3, 3)
    with torch.inference_mode():
        benchmark.pedantic(lambda: F.conv2d(x, w, padding=1), rounds=10, warmup_rounds=2)
    _record("baseline", benchmark)


def test_i3d_clip_16x224(benchmark) -> None:
    from vidtok_bench.metrics import I3D

    net = I3D(device="cpu")
    x = torch.rand(1, 3, 16, 224, 224) * 2 - 1
    benchmark.pedantic(lambda: net(x), rounds=3, warmup_rounds=1)
    _record("i3d", benchmark)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_frames_256(benchmark, net: str) -> None:
    from vidtok_bench.metrics import LPIPS

    m = LPIPS(net, device="cpu")
    x, y = torch.rand(8, 3, 256, 256) * 2 - 1, torch.rand(8, 3, 256, 256) * 2 - 1
    benchmark.pedantic(lambda: m(x, y), rounds=3, warmup_rounds=1)
    RESULTS[f"lpips_{net}"] = benchmark.stats.stats.mean / 8  # per frame pair


def _report() -> None:
    base = RESULTS.get("baseline")
    if not base:
        return
    lines = [f"baseline conv3x3 64ch 256x256: {base * 1e3:.1f} ms"]
    if "i3d" in RESULTS:
        lines.append(f"I3D 16x224x224: {1 / RESULTS['i3d']:.2f} clips/s ({RESULTS['i3d'] / base:.0f} x baseline)")
    for net in ("alex", "vgg"):
        if f"lpips_{net}" in RESULTS:
            t = RESULTS[f"lpips_{net}"]
            lines.append(f"LPIPS-{net} 256x256: {1 / t:.1f} frames/s ({t / base:.1f} x baseline per frame)")
    print("\n" + "\n".join(lines))
