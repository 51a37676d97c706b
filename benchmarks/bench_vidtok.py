"""Encode+decode of one 17x256x256 clip with the full-size VidTok 488 architecture (random weights), CPU fp32.

Reports s/clip (pytest-benchmark) and peak RSS measured in a fresh subprocess per model.
FSQ-262144 peak memory must stay within 10% of the KL model's: inference only rounds,
it never builds the tokens x codebook matrix (5120 x 262144 floats) of the official code.
Run: pytest benchmarks/bench_vidtok.py --benchmark-only -s
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from vidtok_bench.models.vidtok import VidTokArch, build_vidtok

KL = VidTokArch(version="1.0", causal=True, regularizer="kl", z_channels=4)
FSQ = VidTokArch(version="1.0", causal=True, regularizer="fsq", z_channels=6, fsq_levels=(8,) * 6)

_CHILD = r"""
import json, resource, sys, time, torch
torch.set_num_threads(2); torch.manual_seed(0)
from vidtok_bench.models.vidtok import VidTokArch, build_vidtok
arch = VidTokArch(**json.loads(sys.argv[1]))
m = build_vidtok(arch)
x = torch.rand(1, 3, 17, 256, 256) * 2 - 1
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
with torch.inference_mode():
    raw = m.encode_raw(x)
    z = m.fsq.quantize(raw)[0] if m.fsq is not None else m.split_moments(raw)[0]
    y = m.decode_latent(z)
dt = time.perf_counter() - t0
print(json.dumps({"s": dt, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "model_rss_mb": base / 1024, "shape": list(y.shape)}))
"""


def _measure(arch: VidTokArch) -> dict:
    args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in arch.__dict__.items()}
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_rss_fsq_within_10pct_of_kl() -> None:
    kl, fsq = _measure(KL), _measure(FSQ)
    print(f"\nKL  488: {kl['s']:.1f} s/clip, peak RSS {kl['peak_rss_mb']:.0f} MB (model built: {kl['model_rss_mb']:.0f} MB)")
    print(f"FSQ 488: {fsq['s']:.1f} s/clip, peak RSS {fsq['peak_rss_mb']:.0f} MB; FSQ/KL = {fsq['peak_rss_mb'] / kl['peak_rss_mb']:.3f}")
    assert kl["shape"] == fsq["shape"] == [1, 3, 17, 256, 256]
    assert fsq["peak_rss_mb"] <= 1.10 * kl["peak_rss_mb"]


@pytest.mark.parametrize("arch", [KL, FSQ], ids=["kl_488_4chn", "fsq_488_262144"])
def test_encode_decode_17x256x256(benchmark, arch: VidTokArch) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = build_vidtok(arch)
    x = torch.rand(1, 3, 17, 256, 256) * 2 - 1

    def run() -> torch.Tensor:
        with torch.inference_mode():
            raw = model.encode_raw(x)
            z = model.fsq.quantize(raw)[0] if model.fsq is not None else model.split_moments(raw)[0]
            return model.decode_latent(z)

    y = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    assert y.shape == x.shape
