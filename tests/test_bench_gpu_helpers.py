"""benchmarks/bench_gpu.py imports and skips cleanly without CUDA; its CPU-safe helpers compute the right things."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from vidtok_bench.metrics.psnr import psnr

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_synthetic_clip_is_structured_video(bench) -> None:
    x = bench.synthetic_clip((1, 3, 5, 32, 48))
    assert x.shape == (1, 3, 5, 32, 48) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, bench.synthetic_clip((1, 3, 5, 32, 48)))  # seeded
    big = bench.synthetic_clip((1, 3, 3, 256, 256))
    assert (big[..., 1:] - big[..., :-1]).abs().mean() < 0.05  # smooth at the benchmark's size (noise: ~0.67)
    assert (x[:, :, 1:] - x[:, :, :-1]).abs().max() > 0  # and it moves
    noisy = (x + 0.01 * torch.randn_like(x)).clamp(-1, 1)
    assert 40 < psnr(x, noisy).mean().item() < 60  # the PSNR the bf16-vs-fp32 test reports behaves


def test_phase_report_mfu(bench) -> None:
    rep = bench.phase_report(66.9e12, [2.0, 1.0, 3.0], "NVIDIA H100 80GB HBM3", "fp32")
    assert rep["s"] == 2.0 and rep["tflops"] == pytest.approx(33.45) and rep["mfu"] == pytest.approx(0.5)
    assert bench.phase_report(1e9, [1.0], "cpu", "fp32")["mfu"] is None


def test_top_kernels_from_a_cpu_profile(bench) -> None:
    from torch.profiler import ProfilerActivity, profile

    x, w = torch.randn(1, 8, 32, 32), torch.randn(8, 8, 3, 3)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            torch.nn.functional.conv2d(x, w).relu().sum()
    rows = bench.top_kernels(prof.key_averages(), n=3)
    assert 1 <= len(rows) <= 3
    assert [r["ms"] for r in rows] == sorted((r["ms"] for r in rows), reverse=True)
    assert 0 < sum(r["pct"] for r in rows) <= 100.0 + 1e-6
    assert all(r["calls"] >= 1 for r in rows)
    table = bench.format_kernels(rows)
    assert rows[0]["name"][:20] in table and table.count("\n") == len(rows) + 1


def test_time_phases_times_each_phase(bench) -> None:
    calls = []
    enc, dec, out = bench.time_phases(lambda: calls.append("e") or 1, lambda z: calls.append("d") or z + 1,
                                      sync=lambda: calls.append("s"), repeats=2)
    assert len(enc) == len(dec) == 2 and all(t >= 0 for t in enc + dec) and out == 2
    assert calls == ["s", "e", "s", "d", "s"] * 2


def test_every_gpu_test_skips_without_cuda(bench) -> None:
    """Importing worked (the fixture); every test in it carries the CUDA skip, whose reason says why."""
    tests = [f for name, f in vars(bench).items() if name.startswith("test_") and callable(f)]
    assert len(tests) == 5  # VidTok, PSNR bf16 vs fp32, LPIPS-VGG, data path at 1080p, end-to-end run
    for f in tests:
        marks = [m for m in getattr(f, "pytestmark", []) if m.name == "skipif"]
        assert marks and marks[0].args[0] == (not torch.cuda.is_available())
        assert "no CUDA device" in marks[0].kwargs["reason"]


def test_run_breakdown_of_a_real_cpu_run(bench, tmp_path) -> None:
    """The end-to-end figures come from a run's own result: model and metric times add up to the parts,
    and the wall time (measured around the run) is never below them."""
    import time

    from vidtok_bench.config import compose
    from vidtok_bench.runner import Runner

    ov = [o for o in bench.e2e_overrides("unused", tmp_path / "run", "cpu", "fp32") if not o.startswith(("tokenizer", "limit", "dataset"))]
    ov += ["tokenizer=trilinear_488", "dataset=synthetic", "dataset.num_videos=1", "dataset.num_frames=17", "dataset.size=32",
           "metrics=[psnr,ssim]"]
    t0 = time.perf_counter()
    res = Runner(compose(ov)).run_result()
    b = bench.run_breakdown(res, time.perf_counter() - t0)
    assert set(b["metrics_s"]) == {"psnr", "ssim"} and b["frames"] == 17
    assert b["parts_s"] == pytest.approx(res.throughput.encode_s + res.throughput.decode_s + sum(b["metrics_s"].values()))
    assert b["wall_over_parts"] >= 1.0 and b["metrics_share_of_model"] == pytest.approx(sum(b["metrics_s"].values()) / b["model_s"])


def test_random_checkpoint_loads_as_the_full_size_tokenizer(bench, tmp_path) -> None:
    import vidtok_bench

    path = bench.random_vidtok_checkpoint(tmp_path / "r.safetensors")
    tok = vidtok_bench.create_tokenizer(bench.TOKENIZER, checkpoint=str(path))
    model = tok.load()
    assert tok.arch.ch == 128 and sum(p.numel() for p in model.parameters()) > 1e7


def test_timing_weights_cache_loads_as_lpips_and_stays_in_its_folder(bench, tmp_path, monkeypatch) -> None:
    """The random-valued LPIPS cache a bare GPU host times with: it loads through the harness's LPIPS (so the
    same shapes and FLOPs), scores identical frames 0 and different ones > 0, and touches no other cache."""
    from vidtok_bench.metrics.lpips import LPIPS
    from vidtok_bench.weights import manager

    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path / "user_cache"))
    root = bench.timing_weights_cache(tmp_path / "timing", nets=("alex",))
    assert manager.cache_dir() == tmp_path / "user_cache" and not (tmp_path / "user_cache").exists()
    assert [p.name for p in (root / "weights").iterdir()] == [manager.converted_path("alexnet").name]
    monkeypatch.setenv(manager.CACHE_ENV, str(root))
    metric = LPIPS("alex", fetch=False)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    same, diff = metric(x, x), metric(x, x.flip(-1))
    assert same.shape == (2,) and same.abs().max() < 1e-6 and (diff > 0).all() and torch.isfinite(diff).all()
    assert not manager.is_installed("vgg16")  # only what was asked for


@pytest.mark.parametrize("precision,path", [("fp32", "plain"), ("bf16", "channels_last")])
def test_measure_vidtok_on_a_small_vidtok(bench, precision, path) -> None:
    """The GPU benchmark's VidTok measurement, run on the CPU with a fixture-size VidTok: phases timed, FLOPs
    turned into TFLOP/s, a kernel table, the reconstruction of the right shape, the model back to its own layout, eager."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from _vidtok_fixtures import FIXTURES, cases, config_name, overrides

    import vidtok_bench
    from vidtok_bench.flops import count_flops

    c = cases()["v10_kl_causal_488"]
    tok = vidtok_bench.create_tokenizer(config_name(c), checkpoint=str(FIXTURES / "v10_kl_causal_488.ckpt"),
                                        channels_last=False, **overrides(c))  # as the GPU benchmark builds it
    x = bench.synthetic_clip((1, 3, 9, 32, 32))
    flops = count_flops(tok, tuple(x.shape))
    rep, recon = bench.measure_vidtok(tok, x, precision, path, flops, repeats=2)
    assert recon.shape == x.shape and torch.isfinite(recon).all()
    for phase in ("encode", "decode"):
        r = rep[phase]
        assert len(r["times_s"]) == 2 and r["s"] > 0 and r["flops"] == flops[phase] > 0
        assert r["tflops"] == pytest.approx(flops[phase] / r["s"] / 1e12) and r["mfu"] is None  # no peak on a CPU
    assert rep["gpu"] == "cpu" and rep["peak_gib"] is None and rep["top_kernels"]
    assert tok.precision.name == precision
    model = tok.load()
    assert model.encoder._compiled_call_impl is None
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(m.weight.is_contiguous() for m in convs)  # the tokenizer's own (plain) layout again


def test_precision_delta(bench) -> None:
    x = bench.synthetic_clip((1, 3, 4, 16, 16))
    fp32 = (x + 0.01).clamp(-1, 1)
    other = (x + 0.01 + 0.001 * torch.randn_like(x)).clamp(-1, 1)
    rep = bench.precision_delta(x, fp32, other)
    assert rep["psnr_bf16_vs_fp32_db"] == pytest.approx(psnr(fp32, other).mean().item())
    assert rep["delta_db"] == pytest.approx(rep["psnr_bf16_db"] - rep["psnr_fp32_db"]) and rep["delta_db"] < 0


def test_timing_weights_cache_serves_dists_over_the_same_vgg(bench, tmp_path, monkeypatch) -> None:
    """nets=("dists",) writes DISTS' alpha/beta and the VGG16 they sit on; DISTS loads them without a fetch
    and behaves like a distance (0 for identical frames, > 0 otherwise)."""
    from vidtok_bench.metrics.dists import DISTS
    from vidtok_bench.weights import manager

    root = bench.timing_weights_cache(tmp_path / "timing", nets=("dists",))
    monkeypatch.setenv(manager.CACHE_ENV, str(root))
    assert manager.is_installed("dists") and manager.is_installed("vgg16") and not manager.is_installed("alexnet")
    metric = DISTS(fetch=False)
    x = torch.rand(2, 3, 48, 48) * 2 - 1
    same, diff = metric(x, x), metric(x, x.flip(-1))
    assert same.abs().max() < 1e-5 and (diff > 1e-4).all() and torch.isfinite(diff).all()


def test_data_path_breakdown_on_the_cpu(bench, shared_videos) -> None:
    """Every step of the breakdown runs on its own (the CPU here) and the hashing-free variant really skips hashing."""
    from vidtok_bench.video import decode as dec

    path = shared_videos / "vidtok_example_256x256.mp4"
    calls = []

    def data_path() -> int:
        calls.append(dec.planes_digest([torch.zeros(2, 2, dtype=torch.uint8).numpy()]))
        return sum(c.valid for c in dec.decode_clips(path, bench_data_pp(), clip_frames="uint8"))

    n = data_path()
    calls.clear()
    rep = bench.data_path_breakdown(path, data_path, n)["breakdown"]
    assert set(rep) == {"bare_decode", "decode_rgb", "pinned_clips", "yuv_pinned_clips", "data_path_without_hashing",
                        "data_path"}
    built = []
    rep = bench.data_path_breakdown(path, data_path, n, built_per_round=lambda: built.append(1) or n)["breakdown"]
    assert "data_path_built_per_round" in rep and len(built) == 2  # timed like the other steps, best of 2
    assert all(r["fps"] > 0 and r["cores"] >= 0 for r in rep.values())
    assert calls[:2] == [bytes(16)] * 2 and calls[2:] and calls[-1] != bytes(16)  # patched, then the real digest


def bench_data_pp():
    import sys

    sys.path.insert(0, str(BENCH.parent))
    from bench_data import PP

    return PP
