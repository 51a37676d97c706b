"""Encode+decode of one 17x256x256 clip with the full-size VidTok 488 architecture (random weights), CPU fp32.

Reports s/clip (pytest-benchmark) and peak RSS measured in a fresh subprocess per model.
FSQ-262144 peak memory must stay within 10% of the KL model's: inference only rounds,
it never builds the tokens x codebook matrix (5120 x 262144 floats) of the official code.

The channels-last CPU forward (models/vidtok_fast.py, the tokenizer's default on CPU) is
compared with diffusers' forward at 9x128x128 (full-size weights; 17x256x256 takes ~3 min
per clip on 2 cores): rounds alternate between the two so load from other jobs hits both,
and new/old ratios of the fastest round are reported, with peak RSS of each in a subprocess.
Run: pytest benchmarks/bench_vidtok.py --benchmark-only -s   (-k channels_last for the comparison only)
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time

import pytest

import vidtok_bench  # noqa: F401  (before torch: sets OMP_WAIT_POLICY)
import torch  # noqa: E402

from vidtok_bench.models.vidtok import VidTokArch, build_vidtok
from vidtok_bench.models.vidtok_fast import use_channels_last

KL = VidTokArch(version="1.0", causal=True, regularizer="kl", z_channels=4)
FSQ = VidTokArch(version="1.0", causal=True, regularizer="fsq", z_channels=6, fsq_levels=(8,) * 6)

_CHILD = r"""
import json, resource, sys, time
import vidtok_bench  # first: sets OMP_WAIT_POLICY before torch loads libgomp
import torch
torch.set_num_threads(2); torch.manual_seed(0)
from vidtok_bench.models.vidtok import VidTokArch, build_vidtok
from vidtok_bench.models.vidtok_fast import use_channels_last
arch = VidTokArch(**json.loads(sys.argv[1]))
m = use_channels_last(build_vidtok(arch), sys.argv[3] == "fast")
x = torch.rand(1, 3, *json.loads(sys.argv[2])) * 2 - 1
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


def _measure(arch: VidTokArch, thw: tuple[int, int, int] = (17, 256, 256), path: str = "plain") -> dict:
    args = {k: (list(v) if isinstance(v, tuple) else v) for k, v in arch.__dict__.items()}
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(args), json.dumps(list(thw)), path],
                         check=True, capture_output=True, text=True)
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


SMALL = (9, 128, 128)
ROUNDS = int(os.environ.get("VIDTOK_BENCH_ROUNDS", 3))


def _enc_dec(model, x: torch.Tensor) -> tuple[tuple[float, float], tuple[float, float], torch.Tensor]:
    """((encode wall, cpu), (decode wall, cpu), output): process CPU time (all threads) beside wall time,
    because on a box shared with other jobs wall time mostly measures the neighbours."""
    with torch.inference_mode():
        w0, c0 = time.perf_counter(), time.process_time()
        z = model.split_moments(model.encode_raw(x))[0]
        w1, c1 = time.perf_counter(), time.process_time()
        y = model.decode_latent(z)
        w2, c2 = time.perf_counter(), time.process_time()
    return (w1 - w0, c1 - c0), (w2 - w1, c2 - c1), y


def test_channels_last_vs_plain_forward_9x128x128(benchmark) -> None:
    """New (channels-last forward) / old (diffusers' forward), fp32 CPU, 2 threads, same weights and input."""
    torch.set_num_threads(2)
    torch.manual_seed(0)
    plain = build_vidtok(KL)
    fast = use_channels_last(copy.deepcopy(plain))
    x = torch.rand(1, 3, *SMALL) * 2 - 1
    runs: dict[str, list[tuple[tuple[float, float], tuple[float, float]]]] = {"old": [], "new": []}
    outs: dict[str, torch.Tensor] = {}

    def old() -> None:  # pedantic's untimed setup: the baseline runs right before each timed round
        *t, outs["old"] = _enc_dec(plain, x)
        runs["old"].append(tuple(t))

    def new() -> None:
        *t, outs["new"] = _enc_dec(fast, x)
        runs["new"].append(tuple(t))

    _enc_dec(fast, x)  # warm-up (oneDNN primitive creation) for both paths
    _enc_dec(plain, x)
    benchmark.pedantic(new, setup=old, rounds=ROUNDS, iterations=1, warmup_rounds=0)
    info: dict[str, object] = {"size": "x".join(map(str, SMALL)), "rounds": ROUNDS, "threads": torch.get_num_threads(),
                               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    for j, clock in enumerate(("wall", "cpu")):  # fastest round of each path, per phase
        best = {k: [min(r[i][j] for r in v) for i in (0, 1)] + [min(r[0][j] + r[1][j] for r in v)] for k, v in runs.items()}
        info[f"old_{clock}_s"] = [round(t, 2) for t in best["old"]]  # encode, decode, total
        info[f"new_{clock}_s"] = [round(t, 2) for t in best["new"]]
        info[f"new_over_old_{clock}"] = [round(n / o, 3) for n, o in zip(best["new"], best["old"])]
    info["max_abs_diff"] = err = (outs["new"] - outs["old"]).abs().max().item()
    benchmark.extra_info.update(info)
    print(f"\nchannels-last forward vs diffusers forward ([encode, decode, total]): {json.dumps(info)}")
    assert err < 1e-3  # random full-size weights: outputs of order 1, fp32 summation-order noise only
    assert info["new_over_old_cpu"][2] < 1.0  # CPU time: the work done, whatever else the box runs


def test_peak_rss_channels_last_vs_plain_9x128x128() -> None:
    old, new = _measure(KL, SMALL, "plain"), _measure(KL, SMALL, "fast")
    print(f"\n{'x'.join(map(str, SMALL))} peak RSS: plain {old['peak_rss_mb']:.0f} MB, channels-last {new['peak_rss_mb']:.0f} MB "
          f"(new/old {new['peak_rss_mb'] / old['peak_rss_mb']:.3f}); one-shot s/clip {old['s']:.1f} -> {new['s']:.1f}")
    assert new["shape"] == old["shape"] == [1, 3, *SMALL]
    assert new["peak_rss_mb"] <= 1.05 * old["peak_rss_mb"]
