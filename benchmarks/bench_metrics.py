"""Metric network throughput on CPU fp32 (2 threads): I3D clips/s at 16x224x224 and LPIPS
frames/s at 256x256 (AlexNet and VGG), each also as a ratio to a fixed baseline measured in
the same run (one 3x3 64->64 conv over a 256x256 image), so figures from different machines
can be compared; DISTS per 640x272 pair against its all-direct variant and LPIPS-VGG; LPIPS with tLPIPS on
one clip, sharing one backbone pass against one pass per metric. Then each
metric's share of a run's wall time (``metrics.<m>.time_s`` / ``run.duration_s`` of the same run):
one run with every metric (trilinear_488, 2 synthetic videos of 34 frames at 128x128) and, when the
VidTok fixtures are there, the codebook metric on an FSQ tokenizer. Weights come from ../shared/weights when present, else from the cache (DISTS
alpha/beta from the installed DISTS-pytorch wheel).
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
SHARES: dict[str, list[tuple[str, float, float]]] = {}  # run -> (metric, seconds, share of the run's wall time)
FIXTURES = SHARED_WEIGHTS.parent / "fixtures" / "vidtok"


@pytest.fixture(scope="module", autouse=True)
def _setup(tmp_path_factory):
    torch.set_num_threads(2)
    from vidtok_bench.weights import manager

    old = os.environ.get(manager.CACHE_ENV)
    if SHARED_WEIGHTS.is_dir():
        os.environ[manager.CACHE_ENV] = str(tmp_path_factory.mktemp("weights"))
        manager.import_path(SHARED_WEIGHTS, progress=None)
        try:
            import DISTS_pytorch

            manager.import_path(Path(DISTS_pytorch.__file__).parent / "weights.pt", progress=None)
        except ImportError:
            pass
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


@pytest.mark.parametrize("variant", ["default", "direct", "lpips-vgg"])
def test_dists_pair_640x272(benchmark, variant: str) -> None:
    """One 640x272 frame pair per call, as a CPU run makes them: DISTS as it runs by default, DISTS with every
    conv direct (``winograd=False``, whole first stage) and LPIPS-VGG (the same VGG16 trunk) as baselines."""
    from vidtok_bench.metrics import DISTS, LPIPS

    try:
        if variant == "lpips-vgg":
            m = LPIPS("vgg", device="cpu", fetch=False)
        else:
            m = DISTS(device="cpu", fetch=False, winograd=variant == "default")
            m.banded_first_stage = variant == "default"
    except Exception as e:  # DISTS alpha/beta come from the DISTS-pytorch wheel
        pytest.skip(f"weights not installed: {e}")
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 272, 640, generator=g) * 2 - 1
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    benchmark.pedantic(lambda: m(x, y), rounds=4, warmup_rounds=1)
    RESULTS[f"dists_{variant}"] = benchmark.stats.stats.median


@pytest.mark.parametrize("shared", [False, True], ids=["separate", "shared"])
def test_lpips_with_tlpips_clip(benchmark, shared: bool) -> None:
    """``lpips`` and ``tlpips`` (VGG, as the vidtok protocol runs them) on one 9x256x256 clip pair, each with its own
    backbone pass (``separate``, as before they shared) or bound as a run binds them (one pass for both)."""
    from vidtok_bench.metrics.lpips import LPIPSMetric
    from vidtok_bench.metrics.temporal import TLPIPSMetric

    metrics = {"lpips": LPIPSMetric(net="vgg"), "tlpips": TLPIPSMetric(net="vgg")}
    if shared:
        for m in metrics.values():
            m.bind(None, metrics)
    g = torch.Generator().manual_seed(0)
    real = torch.rand(1, 3, 9, 256, 256, generator=g) * 2 - 1
    fake = (real + 0.1 * torch.randn(real.shape, generator=g)).clamp(-1, 1)

    def score() -> None:
        r, f = real.clone(), fake.clone()  # a new batch each round, as a run gives them
        for m in metrics.values():
            m.clip_stats(r, f)

    benchmark.pedantic(score, rounds=3, warmup_rounds=1)
    RESULTS[f"lpips_tlpips_{'shared' if shared else 'separate'}"] = benchmark.stats.stats.median


ALL_METRICS = "[psnr,ssim,lpips,fvd,dists,flicker,tlpips,codebook,profile]"
RUN = ["dataset=synthetic", "dataset.num_videos=2", "dataset.num_frames=34", "dataset.size=128", "dataset.height=128",
       "dataset.width=128", "device=cpu", "progress=false"]


def _shares(name: str, overrides: list[str], out) -> None:
    from vidtok_bench.config import compose
    from vidtok_bench.runner import Runner

    res = Runner(compose([*RUN, *overrides, f"output_dir={out}"])).run_result()
    SHARES[name] = [(m, r.time_s or 0.0, (r.time_s or 0.0) / res.run.duration_s) for m, r in res.metrics.items()]
    SHARES[name].append(("(run wall time)", res.run.duration_s, 1.0))


def test_metric_share_of_a_run(benchmark, tmp_path) -> None:
    benchmark.pedantic(lambda: _shares("trilinear_488, every metric", ["tokenizer=trilinear_488", f"metrics={ALL_METRICS}"],
                                       tmp_path / "all"), rounds=1, iterations=1)


def test_codebook_share_of_an_fsq_run(benchmark, tmp_path) -> None:
    import json

    cases = FIXTURES / "cases.json"
    if not cases.is_file():
        pytest.skip(f"VidTok fixtures not found at {FIXTURES}")
    case = json.loads(cases.read_text())["v10_fsq_causal_488_4096"]
    ep = case["encoder_params"]
    arch = [f"tokenizer.{k}={json.dumps(ep[k]).replace(' ', '')}" for k in ("z_channels", "ch", "ch_mult", "num_res_blocks")]
    ov = ["tokenizer=vidtok_fsq_causal_488_4096", f"tokenizer.checkpoint={FIXTURES / 'v10_fsq_causal_488_4096.ckpt'}",
          f"tokenizer.fsq_levels={json.dumps(case['fsq_levels']).replace(' ', '')}", *arch, "metrics=[psnr,codebook]"]
    benchmark.pedantic(lambda: _shares("vidtok fsq 4096 (ch=8 fixture), codebook", ov, tmp_path / "fsq"), rounds=1, iterations=1)


def _report() -> None:
    for run, rows in SHARES.items():
        print(f"\nshare of the run's wall time: {run}")
        for m, sec, share in rows:
            print(f"  {m:<16} {sec:8.2f} s  {100 * share:5.1f} %")
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
    if "lpips_tlpips_shared" in RESULTS and "lpips_tlpips_separate" in RESULTS:
        t, sep = RESULTS["lpips_tlpips_shared"], RESULTS["lpips_tlpips_separate"]
        lines.append(f"LPIPS-vgg + tLPIPS-vgg, 9x256x256 clip: {t:.2f} s with one backbone pass, {sep:.2f} s with one "
                     f"per metric (shared / separate: {t / sep:.2f})")
    if "dists_default" in RESULTS:
        t = RESULTS["dists_default"]
        lines.append(f"DISTS 640x272 pair: {t:.2f} s"
                     + "".join(f"; {b} / default: {RESULTS[f'dists_{b}'] / t:.2f}" for b in ("direct", "lpips-vgg")
                               if f"dists_{b}" in RESULTS))
    print("\n" + "\n".join(lines))
