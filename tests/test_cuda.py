"""CUDA paths: the same numbers as on the CPU (skipped, saying why, where there is no GPU)."""
from __future__ import annotations

import pytest
import torch

from _vidtok_fixtures import FIXTURES, cases, config_name, overrides

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine (run on a GPU host)")


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("case", ["v10_kl_causal_488", "v10_fsq_causal_488_4096", "v11_kl_causal_488"])
def test_vidtok_fixture_parity_on_cuda(case, channels_last):
    import vidtok_bench

    c = cases()[case]
    io = torch.load(FIXTURES / f"{case}.io.pt", weights_only=True)
    old = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        make = lambda tiling: vidtok_bench.create_tokenizer(  # noqa: E731
            config_name(c), checkpoint=str(FIXTURES / f"{case}.ckpt"), device="cuda", tiling=tiling,
            channels_last=channels_last, **overrides(c))
        recon = make(False).reconstruct(io["input"].cuda()).cpu()
        long_recon = make(True).reconstruct(io["long_input"].cuda()).cpu() if "long_input" in io else None
    finally:
        torch.backends.cudnn.allow_tf32 = old
    assert (recon - io["recon"]).abs().max() <= 1e-4
    if long_recon is not None:  # v1.1: the official tiled long-video mode
        assert (long_recon - io["long_recon"]).abs().max() <= 1e-4


def test_runner_on_cuda_matches_cpu(tmp_path):
    from test_runner import make_cfg

    from vidtok_bench.runner import Runner

    res = {}
    for dev in ("cpu", "cuda"):
        cfg = make_cfg(tmp_path / dev, tokenizer="trilinear_488")
        cfg["device"] = dev
        res[dev] = Runner(cfg).run()
    assert res["cuda"]["memory"]["kind"] == "cuda_max_allocated" and res["cuda"]["memory"]["peak_bytes"] > 0
    assert res["cuda"]["run"]["device"].startswith("cuda")
    for m in ("psnr", "ssim"):
        assert res["cuda"]["metrics"][m]["value"] == pytest.approx(res["cpu"]["metrics"][m]["value"], abs=1e-5)
    assert res["cuda"]["throughput"]["frames_per_s"] > 0


def every_metric_run(out, device):
    """A synthetic trilinear run on ``device`` with every frame and temporal metric (DISTS where its weights are
    installed), written under ``out``: (results.json, per-clip records, the metric names)."""
    import json

    from vidtok_bench.cli import main
    from vidtok_bench.weights import manager

    names = ["psnr", "ssim", "lpips", "flicker", "tlpips", "profile"]
    if manager.is_installed("dists") and manager.is_installed("vgg16"):  # DISTS too where its weights are here
        names.append("dists")
    assert main(["run", "tokenizer=trilinear_488", "dataset=synthetic", "dataset.num_videos=1", "dataset.num_frames=34",
                 f"metrics=[{','.join(names)}]", f"device={device}", f"output_dir={out}", "progress=false"]) == 0
    return (json.loads((out / "results.json").read_text()),
            [json.loads(x) for x in (out / "per_clip.jsonl").read_text().splitlines()],
            [n for n in names if n != "profile"])


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """The CPU reference run both comparisons below read."""
    return every_metric_run(tmp_path_factory.mktemp("cpu"), "cpu")


def test_every_frame_metric_on_cuda_matches_cpu(tmp_path, cpu_run):
    """A whole run on CUDA (device preprocessing, metrics on the GPU, TF32 off inside them) gives the CPU run's
    value for every frame and temporal metric (DISTS where its weights are installed), and the same per-frame PSNR."""
    cpu, cpu_clips, names = cpu_run
    gpu, gpu_clips, _ = every_metric_run(tmp_path, "cuda")
    assert gpu["run"]["device"].startswith("cuda") and gpu["throughput"]["frames"] == cpu["throughput"]["frames"]
    for name in names:
        assert gpu["metrics"][name]["value"] == pytest.approx(cpu["metrics"][name]["value"], rel=1e-5, abs=1e-6), name
    psnr = lambda rows: [v for r in rows for c in r["clips"] for v in c["stats"]["psnr"]]  # noqa: E731
    assert psnr(gpu_clips) == pytest.approx(psnr(cpu_clips), rel=1e-6)  # float32 resize and model on another device


def test_metrics_with_searched_cudnn_plans_keep_their_displayed_digits(tmp_path, monkeypatch, cpu_run):
    """The experiment the autotune rule waits on (docs/performance.md, fourth H100 check): with every metric
    network's cuDNN plan searched from its first call (7x faster LPIPS-VGG per-clip calls on an H100), a CUDA run
    stays within a tenth of each metric's last displayed digit of the CPU run. Prints each metric's deviation,
    which says whether the rule may search for metrics."""
    from vidtok_bench.autotune import StaticShapeAutotune
    from vidtok_bench.registry import METRICS

    cpu, _, names = cpu_run
    # a CUDA run scores on a thread of its own, whose cuDNN plan cache starts empty: its first calls search
    monkeypatch.setattr(StaticShapeAutotune, "decide", lambda self, kind, shape: True)
    gpu, _, _ = every_metric_run(tmp_path, "cuda")
    deviations = {n: abs(gpu["metrics"][n]["value"] - cpu["metrics"][n]["value"]) for n in names}
    print("searched cuDNN plans, |CUDA - CPU| per metric:", deviations)
    for name in names:
        allowed = 10.0 ** -(METRICS.get(name).info.precision + 1)
        assert deviations[name] <= allowed, (name, deviations[name], allowed)


def test_layer_norm_in_bf16_autocast_on_cuda():
    """CUDA autocast runs the plain norm in float32; the channels-last norm stays bf16 with the same statistics."""
    import copy

    from vidtok_bench.models.vidtok_blocks import VidTokLayerNorm
    from vidtok_bench.models.vidtok_fast import FastLayerNorm

    torch.manual_seed(0)
    plain = VidTokLayerNorm(64).cuda()
    fast = copy.deepcopy(plain)
    fast.__class__ = FastLayerNorm
    x5 = (torch.randn(1, 64, 5, 16, 16, device="cuda") * 3 + 1).contiguous(memory_format=torch.channels_last_3d).bfloat16()
    for x in (x5, x5.transpose(1, 2).reshape(5, 64, 16, 16)):  # and the 2D blocks' per-frame view
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            ref, got = plain(x), fast(x)
        assert ref.dtype == torch.float32 and got.dtype == torch.bfloat16
        assert (got.float() - ref).abs().max().item() <= 2 ** -7 * ref.abs().max().item()


def test_channels_last_vidtok_in_bf16_on_cuda_stays_near_fp32():
    import vidtok_bench

    c = cases()["v10_kl_causal_488"]
    io = torch.load(FIXTURES / "v10_kl_causal_488.io.pt", weights_only=True)
    tok = vidtok_bench.create_tokenizer(config_name(c), checkpoint=str(FIXTURES / "v10_kl_causal_488.ckpt"),
                                        device="cuda", channels_last=True, **overrides(c))
    x = io["input"].cuda()
    ref = tok.reconstruct(x).float()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = tok.reconstruct(x).float()
    err = (got - ref).pow(2).mean().sqrt().item()
    assert 0 < err < 0.05 * ref.abs().mean().item() + 0.02


@pytest.mark.parametrize(("k", "dense_max"), [(4096, None), (4096, 0), (1 << 20, None)])
def test_codebook_usage_on_cuda_counts_what_the_cpu_counts(k, dense_max, monkeypatch):
    """Token counts on the GPU (bincount for small codebooks, unique/scatter for large ones), merged across
    devices and through a saved state, are the CPU's integers, so every derived figure is bit-identical."""
    from vidtok_bench.metrics import codebook
    from vidtok_bench.metrics.codebook import CodebookUsage

    if dense_max is not None:
        monkeypatch.setattr(codebook, "DENSE_MAX", dense_max)  # the sparse path on a small codebook
    g = torch.Generator().manual_seed(k)
    idx = (torch.rand(4, 5, 16, 16, generator=g) ** 3 * k).long()  # skewed: many unused entries
    cpu, gpu = CodebookUsage(k, "cpu"), CodebookUsage(k, "cuda")
    cpu.update(idx)
    for part in idx.split(1):  # batches of one, as a run feeds them
        gpu.update(part.cuda().int())
    assert torch.equal(gpu.counts().cpu(), cpu.counts())
    assert gpu.compute(256) == cpu.compute(256)
    half = CodebookUsage(k, "cuda")
    half.load_state_dict(CodebookUsage(k, "cpu").state_dict())
    assert half.merge(cpu).compute(256) == cpu.compute(256)


def test_latent_stats_on_cuda_equal_the_cpu_float64_sums():
    from vidtok_bench.metrics.codebook import LatentStats

    x = torch.randn(3, 16, 5, 32, 32, generator=torch.Generator().manual_seed(0)) * 3 + 1
    cpu, gpu = LatentStats(16, "cpu"), LatentStats(16, "cuda")
    cpu.update(x)
    for part in x.split(1):
        gpu.update(part.cuda())
    a, b = cpu.compute(), gpu.compute()
    assert a["n"] == b["n"] == 3 * 5 * 32 * 32
    for key in ("mean", "std"):
        assert torch.allclose(b[key].cpu(), a[key], rtol=1e-12, atol=1e-12), key
