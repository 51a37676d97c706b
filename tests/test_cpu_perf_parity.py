"""The CPU speed-ups give the values of the paths they replace (issue #12 item 5):

* scoring overlapped with the model (a worker thread) gives the same records, in the same order, with
  the same failed-video and resume behaviour as scoring in the main thread;
* LPIPS's slice-by-slice channels-last forward equals the lpips package's own forward;
* SSIM's shifted multiply-add window equals the band-matrix product it replaced (float64 rounding).
"""
from __future__ import annotations

from types import SimpleNamespace

import json
import threading
import time

import pytest
import torch
from _lpips_reference import package_forward
from _weights_fixture import seeded_cache_dir  # noqa: F401

from test_runner import make_cfg  # noqa: F401  (also registers the _memory dataset)
from vidtok_bench import results as R
from vidtok_bench.metrics.ssim import K1, K2, _gaussian_1d, ssim_frames
from vidtok_bench.runner import Runner
from vidtok_bench.stages.scoring import ScoringWorker


def _records(path) -> list[dict]:
    rows = [json.loads(x) for x in (path / R.PER_CLIP_FILE).read_text().splitlines()]
    for r in rows:
        for c in r["clips"]:
            c.pop("encode_s", None), c.pop("decode_s", None)
    return rows


@pytest.mark.parametrize("tokenizer", ["identity", "trilinear_488"])
def test_overlap_gives_the_same_records(tmp_path, tokenizer: str) -> None:
    res = {}
    for overlap in (False, True):
        cfg = make_cfg(tmp_path / str(overlap), tokenizer=tokenizer, broken=["v1"], fail_after=1)
        cfg["overlap"] = overlap
        cfg["dataset"].update(clip_len=5)  # several batches per video
        runner = Runner(cfg)
        assert runner.plan.overlap_scoring is overlap
        res[overlap] = runner.run()
    a, b = _records(tmp_path / "False"), _records(tmp_path / "True")
    assert a == b  # bit-identical statistics, the same clip order, v1 failed in both
    assert [r["status"] for r in a] == ["ok", "failed", "ok"]
    for name in ("psnr", "ssim"):
        assert res[False]["metrics"][name]["value"] == res[True]["metrics"][name]["value"]


def test_overlap_defaults_to_cpu_and_cuda_runs_but_not_cuda_tf32(tmp_path) -> None:
    cfg = make_cfg(tmp_path)
    assert cfg["overlap"] is None
    assert Runner(cfg).plan.overlap_scoring  # device=auto: the CPU here, or CUDA in fp32
    import dataclasses

    import torch

    from vidtok_bench.precision import get_precision

    plan = Runner(cfg).plan
    for device, precision, want in (("cuda", "fp32", True), ("cuda", "bf16", True), ("cuda", "tf32", False),
                                    ("cpu", "tf32", True), ("mps", "fp32", False)):  # the rule, without the device
        p = dataclasses.replace(plan, device=torch.device(device), precision=get_precision(precision))
        assert p.overlap_scoring is want, (device, precision)
        assert dataclasses.replace(p, overlap=False).overlap_scoring is False


def test_a_metric_error_fails_only_that_video_with_overlap(tmp_path, monkeypatch) -> None:
    from vidtok_bench.metrics.psnr import PSNRMetric

    orig = PSNRMetric.per_frame

    def flaky(self, real, fake):
        if getattr(self, "_calls", 0) == 2:  # the third batch: video v1's first (two 10-frame clips per video)
            self._calls += 1
            raise RuntimeError("boom\nsecond line")
        self._calls = getattr(self, "_calls", 0) + 1
        return orig(self, real, fake)

    monkeypatch.setattr(PSNRMetric, "per_frame", flaky)
    cfg = make_cfg(tmp_path)
    cfg["overlap"] = True
    cfg["dataset"].update(clip_len=10)
    res = Runner(cfg).run()
    assert res["videos"]["ok"] == 2
    (failed,) = res["videos"]["failed"]
    assert failed["video"] == "v1" and failed["error"].endswith("RuntimeError: boom")
    # state saved after each video: a rerun recomputes only the failed video (and now succeeds)
    again = Runner(cfg)
    res = again.run()
    assert again.dataset.calls == ["v1"]
    assert res["videos"]["ok"] == 3 and res["videos"]["resumed"] == 2


def test_worker_runs_jobs_in_order_and_reraises_bugs() -> None:
    seen: list[int] = []
    w = ScoringWorker(lambda i: seen.append(i), enabled=True)
    for i in range(20):
        w.submit(i)
    w.drain()
    assert seen == list(range(20))
    w.close()

    def bad(i):
        raise KeyError(i)

    w = ScoringWorker(bad, enabled=True)
    w.submit(1)
    with pytest.raises(KeyError):
        w.drain()
    w.close()
    seen.clear()
    w = ScoringWorker(lambda i: seen.append(i), enabled=False)
    w.submit(7)
    assert seen == [7]  # disabled: run at once in the caller's thread


def test_worker_close_waits_for_the_running_job_and_skips_the_queued_ones() -> None:
    """An interrupt closes the worker mid-job: the running job ends (a thread left inside torch at exit aborts
    the process, 134, instead of exiting 130/143) and the jobs still queued never start."""
    started, finished = threading.Event(), []

    def slow(i):
        started.set()
        time.sleep(0.5)
        finished.append(i)

    w = ScoringWorker(slow, enabled=True, depth=2)
    w.submit(0)
    w.submit(1)
    assert started.wait(5)
    thread = w._thread
    w.close()
    assert not thread.is_alive() and finished == [0]


# ----------------------------------------------------------------- LPIPS
@pytest.fixture(scope="module")
def lpips_models(tmp_path_factory):
    from vidtok_bench.metrics import LPIPS

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDTOK_BENCH_CACHE", str(seeded_cache_dir(tmp_path_factory)))
        # the CPU default (wide convs by Winograd) and the package's layout (every conv a Conv2d with its weights)
        return {net: (LPIPS(net, device="cpu", fetch=False), LPIPS(net, device="cpu", fetch=False, winograd=False))
                for net in ("alex", "vgg")}


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_streamed_channels_last_equals_the_package_forward(lpips_models, net: str) -> None:
    fast, m = lpips_models[net]
    assert m.channels_last and fast.channels_last and fast.winograd  # CPU: channels-last weights
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 72, 104, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    got, want = m(x, y), package_forward(m, x, y)
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-7), (got, want)
    assert torch.allclose(fast(x, y), want, rtol=1e-6, atol=1e-7)
    # and the contiguous (pre-change) layout: oneDNN's summation order only
    for mod in m.model.modules():
        if isinstance(mod, torch.nn.Conv2d):
            mod.weight.data = mod.weight.data.contiguous()
    m.channels_last = False
    try:
        plain = package_forward(m, x, y)
    finally:
        m.channels_last = True
        for mod in m.model.modules():
            if isinstance(mod, torch.nn.Conv2d):
                mod.weight.data = mod.weight.data.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, plain, rtol=1e-5, atol=1e-6), (got, plain)
    # temporal LPIPS (consecutive frames) takes the same streamed path, in chunks of any size (the last frame's
    # features carried across: 1 frame per call, chunks that split 3 frames unevenly, all at once)
    for lp in (m, fast):
        want = lp(x[1:], x[:-1])
        for step in (None, 1, 2, 3, 5):
            got = lp.consecutive(x, step)
            assert got.shape == (2,) and torch.allclose(got, want, rtol=1e-6, atol=1e-7), (step, got, want)
    assert m.consecutive(x[:1], 1).shape == (0,)


# ----------------------------------------------------------------- SSIM
def _ssim_band_reference(real: torch.Tensor, fake: torch.Tensor, variant: str) -> torch.Tensor:
    """The previous implementation: the window as two band-matrix products (float64)."""
    import torch.nn.functional as F

    x, y = (real.double() + 1) / 2, (fake.double() + 1) / 2
    if variant == "vidtok":
        f = max(1, round(min(x.shape[-2:]) / 256))
        if f > 1:
            x, y = F.avg_pool2d(x, f), F.avg_pool2d(y, f)
        kernel, cov_norm = _gaussian_1d(11, 1.5), 1.0
    else:
        kernel, cov_norm = torch.full((7,), 1 / 7, dtype=torch.float64), 49 / 48

    def band(n):
        k = kernel.numel()
        m = torch.zeros(n - k + 1, n, dtype=torch.float64)
        idx = torch.arange(n - k + 1)
        for j in range(k):
            m[idx, idx + j] = kernel[j]
        return m

    bh, bw = band(x.shape[-2]), band(x.shape[-1])
    mx, my, exx, eyy, exy = bh @ torch.stack([x, y, x * x, y * y, x * y]) @ bw.T
    sxx, syy, sxy = cov_norm * (exx - mx * mx), cov_norm * (eyy - my * my), cov_norm * (exy - mx * my)
    c1, c2 = K1**2, K2**2
    return (((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))).mean(dim=(1, 2, 3))


@pytest.mark.parametrize("variant", ["vidtok", "tokenbench"])
@pytest.mark.parametrize("shape", [(3, 3, 40, 56), (5, 3, 272, 300), (2, 3, 520, 600)])  # 520: pooled by 2
def test_ssim_window_equals_band_matrix_product(variant: str, shape) -> None:
    g = torch.Generator().manual_seed(sum(shape))
    real = torch.rand(shape, generator=g) * 2 - 1
    fake = (real + 0.2 * torch.randn(shape, generator=g)).clamp(-1, 1)
    got, want = ssim_frames(real, fake, variant), _ssim_band_reference(real, fake, variant)
    assert got.shape == (shape[0],)
    assert torch.allclose(got, want, rtol=0, atol=1e-12), (got - want).abs().max()


# ----------------------------------------------------------------- VidTok CPU layers
@pytest.mark.parametrize("stride", [(1, 1, 1), (2, 1, 1)])
@pytest.mark.parametrize("cin,cout", [(3, 8), (8, 3), (8, 8)])
def test_v10_zero_past_conv3d_without_padded_copy(stride, cin: int, cout: int) -> None:
    """oneDNN with the conv's own symmetric padding, cut to the causal outputs = zero-pad the past, then conv."""
    from vidtok_bench.models.vidtok import _ZeroPastConv3d
    from vidtok_bench.models.vidtok_fast import FastZeroPastConv3d, OneDNNConv3d

    torch.manual_seed(0)
    plain = _ZeroPastConv3d(cin, cout, 3, stride=stride).eval()
    fast = _ZeroPastConv3d(cin, cout, 3, stride=stride).eval()
    fast.load_state_dict(plain.state_dict())
    fast.__class__, fast.conv.__class__ = FastZeroPastConv3d, OneDNNConv3d
    for t in ((1, 5, 8) if stride[0] == 1 else (3, 5, 8)):  # a 2x downsampling needs 2 frames past its padding
        x = torch.randn(2, cin, t, 12, 20).contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode():
            want, got = plain(x), fast(x)
        assert got.shape == want.shape
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-5), (got - want).abs().max()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # autocast: PyTorch's own conv
            assert fast(x).dtype == plain(x).dtype == torch.bfloat16


def test_v10_time_resampling_mix_in_place_is_exact() -> None:
    from vidtok_bench.models.vidtok_fast import _mix

    g = torch.Generator().manual_seed(3)
    a, b, alpha = torch.randn(2, 4, 3, 5, 6, generator=g), torch.randn(2, 4, 3, 5, 6, generator=g), torch.sigmoid(torch.tensor([0.7]))
    want = alpha * a + (1 - alpha) * b
    assert torch.equal(_mix(alpha, a.clone(), b.clone()), want)  # the same products and sum: bit for bit


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("t", [5, 9, 17, 23])
def test_zero_past_conv_in_pieces_equals_one_piece(monkeypatch, stride: int, t: int) -> None:
    import torch.nn.functional as F

    from vidtok_bench.models import vidtok_fast as vf

    torch.manual_seed(t)
    x = torch.randn(2, 4, t, 6, 7).contiguous(memory_format=torch.channels_last_3d)
    w = torch.randn(5, 4, 3, 3, 3)
    tp = 3 - stride
    conv = lambda v: F.conv3d(v, w, stride=(stride, 1, 1), padding=(0, 1, 1))  # noqa: E731
    want = conv(F.pad(x, (0, 0, 0, 0, tp, 0)))
    monkeypatch.setattr(vf, "CHUNK_MIN_ELEMS", 0)
    monkeypatch.setattr(vf, "CHUNK_FRAMES", 2)
    got = vf._zero_past_conv(x, tp, 3, stride, 1, conv)
    assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_overlap_with_tf32_on_cuda_is_refused_and_cpu_takes_it():
    from vidtok_bench.config import compose, plan_run
    from vidtok_bench.errors import ConfigError

    base = ["tokenizer=trilinear_488", "dataset=synthetic", "overlap=true", "precision=tf32"]
    assert plan_run(compose([*base, "device=cpu"])).overlap_scoring  # TF32 means nothing on a CPU
    if torch.cuda.is_available():
        with pytest.raises(ConfigError, match="overlap=true with precision=tf32"):
            plan_run(compose([*base, "device=cuda"]))


def test_cuda_tensors_of_a_job_are_found():
    from vidtok_bench.stages.model import ModelOutput
    from vidtok_bench.stages.scoring import _cuda_tensors

    out = ModelOutput(torch.zeros(1), 0.0, 1, 0, 0.0, 0.0, latent={"ids": torch.zeros(1)})
    assert list(_cuda_tensors(("rec", [torch.zeros(1)], (torch.zeros(1), out)))) == []  # CPU tensors: none


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: the second-stream overlap")
def test_cuda_overlap_on_a_second_stream_gives_the_same_values(tmp_path):
    """overlap=true on CUDA scores on another stream after an event: every per-frame value equals the serial run's."""
    import json

    from vidtok_bench.cli import main

    runs = {}
    for flag in ("false", "true"):
        out = tmp_path / flag
        assert main(["run", "tokenizer=trilinear_488", "dataset=synthetic", "dataset.num_videos=3", "dataset.num_frames=34",
                     "metrics=[psnr,ssim,lpips]", "device=cuda", f"overlap={flag}", f"output_dir={out}", "progress=false"]) == 0
        runs[flag] = [json.loads(x) for x in (out / "per_clip.jsonl").read_text().splitlines()]
    strip = lambda rows: [[{k: v for k, v in c.items() if not k.endswith("_s")} for c in r["clips"]] for r in rows]  # noqa: E731
    assert strip(runs["true"]) == strip(runs["false"])


def test_v10_time_upsample_in_pieces_equals_the_plain_layer(monkeypatch) -> None:
    """The decoder's 2x time upsampling computed a few frames at a time (float32 CPU, large activations) gives
    the plain layer's values; so does the whole fast decoder with every activation 'large', where the next
    level's first block takes the upsampled frames piece by piece."""
    from vidtok_bench.models import vidtok_fast as vf
    from vidtok_bench.models.vidtok import _V10TimeUpsample

    model = _tiny_v10_model()
    ups = [m for m in model.modules() if isinstance(m, vf.FastV10TimeUpsample)]
    assert ups, "the test model has no v1.0 time upsampling"
    g = torch.Generator().manual_seed(5)
    for t in (1, 2, 3, 5):
        up = ups[0]
        x = torch.randn(1, up.conv.conv.in_channels, t, 6, 7, generator=g).contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode():
            monkeypatch.setattr(vf, "CHUNK_MIN_ELEMS", 1 << 40)
            whole = up(x)
            monkeypatch.setattr(vf, "CHUNK_MIN_ELEMS", 0)
            pieces = up(x)
            up.__class__ = _V10TimeUpsample
            plain = up(x)
            up.__class__ = vf.FastV10TimeUpsample
        assert pieces.shape == plain.shape == (1, x.shape[1], 2 * t, 6, 7)
        assert torch.allclose(pieces, plain, rtol=1e-5, atol=1e-5) and torch.allclose(pieces, whole, rtol=1e-5, atol=1e-5)
    video = torch.rand(1, 3, 9, 16, 20, generator=g) * 2 - 1
    with torch.inference_mode():
        monkeypatch.setattr(vf, "CHUNK_MIN_ELEMS", 1 << 40)
        whole = model.encode_raw(video), model.decode_latent(torch.randn(1, 4, 3, 4, 5, generator=g.manual_seed(6)))
        monkeypatch.setattr(vf, "CHUNK_MIN_ELEMS", 0)
        monkeypatch.setattr(vf, "SLAB_ELEMS", 1)  # and every per-frame block one frame at a time
        level, inputs = vf._level, []
        monkeypatch.setattr(vf, "_level", lambda box, *a: (inputs.append(type(box[-1]).__name__), level(box, *a))[1])
        dec = model.decoder
        spatial_in: list[tuple[int, ...]] = []  # the spatial upsampling before each time upsampling
        order: list[str] = []  # its calls ("s") and those of the time upsampling's conv ("t")

        def spatial_hook(m, a, out) -> None:
            spatial_in.append(tuple(a[0].shape))
            order.append("s")

        hooks = [dec.up[i].upsample.register_forward_hook(spatial_hook) for i in dec.tempo_us if i in dec.spatial_us]
        time_convs = {id(m.conv) for m in dec.modules() if isinstance(m, vf.FastV10TimeUpsample)}
        conv = vf.FastZeroPastConv3d._conv
        monkeypatch.setattr(vf.FastZeroPastConv3d, "_conv",
                            lambda self, v: (order.append("t") if id(self) in time_convs else None, conv(self, v))[1])
        pieces = model.encode_raw(video), model.decode_latent(torch.randn(1, 4, 3, 4, 5, generator=g.manual_seed(6)))
        for h in hooks:
            h.remove()
    # the decoder's level after the time upsampling took its input piece by piece, never whole, and the spatial
    # upsampling before it ran one frame at a time as the pieces needed them, each frame once (3 latent frames)
    assert "_FramePieces" in inputs, inputs
    assert spatial_in and all(len(s) == 4 and s[0] == 1 for s in spatial_in), spatial_in
    assert len(spatial_in) == 3 * len(hooks), spatial_in
    assert "".join(order).rstrip("t").count("t") > 0, order  # frames computed as the conv walks, not all first
    for a, b in zip(pieces, whole):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_per_frame_blocks_in_slabs_equal_one_call(monkeypatch) -> None:
    from vidtok_bench.models import vidtok_fast as vf

    g = torch.Generator().manual_seed(8)
    x = torch.randn(7, 3, 5, 6, generator=g).contiguous(memory_format=torch.channels_last)
    w = torch.randn(4, 3, 3, 3, generator=g)
    calls: list[int] = []

    def fn(v: torch.Tensor) -> torch.Tensor:
        calls.append(v.shape[0])
        return torch.nn.functional.conv2d(v, w, padding=1)

    monkeypatch.setattr(vf, "CHUNK_MIN_ELEMS", 0)
    monkeypatch.setattr(vf, "SLAB_ELEMS", 3 * 5 * 6 * 3)  # three frames per slab
    got = vf._in_slabs(fn, x)
    assert calls == [3, 3, 1] and got.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(got, fn(x), rtol=1e-6, atol=1e-6)


def _tiny_v10_model():
    from vidtok_bench.models.vidtok import VidTokArch, build_vidtok
    from vidtok_bench.models.vidtok_fast import use_channels_last

    torch.manual_seed(0)
    arch = VidTokArch(version="1.0", causal=True, regularizer="kl", z_channels=4, ch=8, ch_mult=(1, 2))
    model = build_vidtok(arch).eval()
    with torch.no_grad():  # zero-initialised layers too, so every path matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return use_channels_last(model)


def test_a_level_frees_its_input_after_the_first_block(monkeypatch) -> None:
    """The caller hands a level its input in a box and keeps no reference: by the second block the first
    block's input is gone (at 640x272, 334 MB that stayed alive through the decoder's whole last level)."""
    import weakref

    from vidtok_bench.models import vidtok_fast as vf

    box = [torch.randn(1, 2, 3, 4, 5).contiguous(memory_format=torch.channels_last_3d)]
    ref = weakref.ref(box[0])
    alive: list[bool] = []
    monkeypatch.setattr(vf, "_spatial_block", lambda blk, f: (alive.append(ref() is not None), f * 2)[1])
    monkeypatch.setattr(vf, "_temporal_block", lambda blk, h, inplace=False: h + 1)
    blocks = [SimpleNamespace(in_channels=2, out_channels=2)] * 2
    out = vf._level(box, blocks, [None, None])
    assert box == [] and alive == [True, False] and out.shape == (1, 2, 3, 4, 5)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_temporal_blocks_and_the_last_norm_in_row_slabs_equal_the_whole(monkeypatch, version) -> None:
    """A temporal ResNet block (norm over channels, conv over time: rows independent) run a slab of rows at a time,
    written over its input, equals the whole block; v1.1's cached causal convs are never split (their cache
    would hold one slab's frames), and the decoder's last norm + SiLU written over its input equals the plain one (to float rounding: LayerNorm's kernel groups rows by size)."""
    from vidtok_bench.models import vidtok_fast as vf
    from vidtok_bench.models.vidtok_blocks import VidTokCausalConv1d, VidTokResnetBlock

    torch.manual_seed(3)
    blk = VidTokResnetBlock(6, 6, btype="1d", is_causal=True).eval()
    if version == "1.0":
        from vidtok_bench.models.vidtok import _ZeroPastConv1d
        for m in (blk.conv1, blk.conv2):
            m.__class__ = _ZeroPastConv1d
    with torch.no_grad():
        for p in blk.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x = torch.randn(1, 6, 5, 7, 9).contiguous(memory_format=torch.channels_last_3d)
    with torch.inference_mode():
        want = vf._temporal_whole(blk, x.clone())
        monkeypatch.setattr(vf, "CHUNK_MIN_ELEMS", 0)
        monkeypatch.setattr(vf, "SLAB_ELEMS", 6 * 5 * 9 * 2)  # two rows per slab
        calls: list[int] = []
        whole = vf._temporal_whole
        monkeypatch.setattr(vf, "_temporal_whole", lambda b, v: (calls.append(v.shape[3]), whole(b, v))[1])
        y = x.clone()
        got = vf._temporal_block(blk, y, inplace=True)
        norm = blk.norm1
        want_norm = vf._silu_norm(norm, x.clone())
        got_norm = vf._silu_norm_over(norm, x.clone())
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6)
    if version == "1.0":
        assert calls == [2, 2, 2, 1] and got.data_ptr() == y.data_ptr()  # in slabs, over its input
    else:
        assert type(blk.conv1) is VidTokCausalConv1d and calls == [7]  # whole: the cache sees every row
    assert torch.allclose(got_norm, want_norm, rtol=1e-6, atol=1e-6)  # the norm kernel may vectorise rows otherwise


@pytest.mark.parametrize("padding,stride", [(0, 1), (1, 1), (0, 2)])
def test_temporal_conv_on_a_row_slab_runs_onednn_with_the_conv3d_values(padding: int, stride: int) -> None:
    """A temporal conv (kernel (k,1,1)) on a batch-1 row slab, the shape PyTorch's own choice sends to its im2col
    fallback (``slow_conv3d``, 4-6x slower on the row slabs), runs oneDNN and gives ``F.conv3d``'s values."""
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile

    from vidtok_bench.models import vidtok_fast as vf

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    torch.manual_seed(5)
    x = torch.randn(1, 12, 9, 3, 40).contiguous(memory_format=torch.channels_last_3d)  # C*T*H = 324 <= 20480
    w, b = torch.randn(12, 12, 3, 1, 1), torch.randn(12)
    with torch.inference_mode():
        want = F.conv3d(x, w, b, stride=(stride, 1, 1), padding=(padding, 0, 0))
        with profile(activities=[ProfilerActivity.CPU]) as fast:
            got = vf._conv3d_with(x, w, b, (padding, 0, 0), (stride, 1, 1), (1, 1, 1))
    names = {e.name for e in fast.events()}
    assert "aten::mkldnn_convolution" in names and "aten::slow_conv3d_forward" not in names
    assert got.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
