"""PSNR and SSIM against computations written independently here, on real frames."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _metric_reference import ref_psnr, ref_ssim_wang

from vidtok_bench.metrics import psnr, ssim
from vidtok_bench.metrics.psnr import PSNRMetric


def real_frames(path, n=3, size=None):
    """n RGB frames of a real clip as (n,H,W,3) uint8."""
    with av.open(str(path)) as c:
        out = []
        for frame in c.decode(video=0):
            img = frame.to_ndarray(format="rgb24")
            out.append(img if size is None else img[: size[0], : size[1]])
            if len(out) == n:
                break
    return np.stack(out)


def to_video(frames: np.ndarray) -> torch.Tensor:
    """(T,H,W,3) uint8 -> (1,3,T,H,W) in [-1,1]"""
    return torch.from_numpy(frames).permute(3, 0, 1, 2)[None].double() / 127.5 - 1


def distorted(frames: np.ndarray, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = frames.astype(np.int16) + rng.integers(-20, 21, size=frames.shape)
    blurred = (noisy + np.roll(noisy, 1, axis=2)) // 2
    return np.clip(blurred, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("clip", ["vidtok_example_256x256.mp4", "tears_of_steel_640x360.mp4"])
def test_psnr_matches_independent_formula(shared_videos, clip):
    a = real_frames(shared_videos / clip)
    b = distorted(a)
    got = psnr(to_video(a), to_video(b))[0].numpy()
    np.testing.assert_allclose(got, ref_psnr(a, b), rtol=0, atol=1e-9)


def test_ssim_vidtok_matches_wang_reference(shared_videos):
    a = real_frames(shared_videos / "vidtok_example_256x256.mp4", n=2)
    b = distorted(a)
    got = ssim(to_video(a), to_video(b))[0].numpy()
    want = [ref_ssim_wang(a[i], b[i]) for i in range(2)]
    np.testing.assert_allclose(got, want, atol=1e-9)
    assert 0.3 < got.mean() < 0.99


def test_ssim_vidtok_downsamples_large_frames(shared_videos):
    # 640x360 -> f = round(360/256) = 1; a 720p frame -> f = 3: the pooled path is exercised
    a = real_frames(shared_videos / "squirrel_1280x720.mp4", n=1, size=(720, 768))
    b = distorted(a)
    got = float(ssim(to_video(a), to_video(b))[0, 0])
    assert got == pytest.approx(ref_ssim_wang(a[0], b[0]), abs=1e-9)


def test_ssim_tokenbench_matches_skimage(shared_videos):
    skm = pytest.importorskip("skimage.metrics")
    a = real_frames(shared_videos / "caminandes_640x360.mp4", n=2)
    b = distorted(a, seed=3)
    got = ssim(to_video(a), to_video(b), variant="tokenbench")[0].numpy()
    want = [skm.structural_similarity(a[i], b[i], channel_axis=2, data_range=255) for i in range(2)]
    np.testing.assert_allclose(got, want, atol=1e-6)


def unit_frames(video: torch.Tensor) -> torch.Tensor:
    """(1,3,T,H,W) in [-1,1] -> (T,3,H,W) in [0,1]: the image batch torchmetrics takes."""
    return (video[0].transpose(0, 1) + 1) / 2


def _tm_ssim_valid(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """torchmetrics' Gaussian SSIM of (N,3,H,W) [0,1] images over the valid region: torchmetrics (>= 1.x)
    reflect-pads and averages the whole map, so its map is cropped by the window's half-width (5 px)."""
    tm = pytest.importorskip("torchmetrics.functional.image")
    _, full = tm.structural_similarity_index_measure(x, y, gaussian_kernel=True, sigma=1.5, kernel_size=11, k1=0.01,
                                                     k2=0.03, data_range=1.0, reduction="none", return_full_image=True)
    return full[..., 5:-5, 5:-5].mean((1, 2, 3))


@pytest.mark.parametrize("clip,size", [("vidtok_example_256x256.mp4", None), ("tears_of_steel_640x360.mp4", None),
                                       ("squirrel_1280x720.mp4", (720, 768))])
def test_psnr_ssim_match_torchmetrics(shared_videos, clip, size):
    """A second, independently written reference: torchmetrics' SSIM (on the frames average-pooled by the
    protocol's factor f: 1, 1 and 3 here) and PSNR (no epsilon: ours adds the evaluator's 1e-8 to the MSE)."""
    tm = pytest.importorskip("torchmetrics.functional.image")
    a = real_frames(shared_videos / clip, n=2, size=size)
    b = distorted(a, seed=5)
    x, y = unit_frames(to_video(a)), unit_frames(to_video(b))
    f = max(1, round(min(x.shape[2:]) / 256))
    px, py = (torch.nn.functional.avg_pool2d(v, f) if f > 1 else v for v in (x, y))
    np.testing.assert_allclose(ssim(to_video(a), to_video(b))[0].numpy(), _tm_ssim_valid(py, px).numpy(),
                               rtol=0, atol=1e-12)
    tm_psnr = tm.peak_signal_noise_ratio(y, x, data_range=1.0, reduction="none", dim=(1, 2, 3))
    want = -10 * torch.log10(10 ** (-tm_psnr / 10) + 1e-8)
    # torchmetrics' PSNR carries float32-level error (~4e-7 dB) even on float64 inputs
    np.testing.assert_allclose(psnr(to_video(a), to_video(b))[0].numpy(), want.numpy(), rtol=0, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(t=st.integers(1, 3), h=st.integers(11, 40), w=st.integers(11, 40), noise=st.floats(0.01, 0.5),
       seed=st.integers(0, 2**16))
def test_ssim_matches_torchmetrics_on_arbitrary_shapes(t, h, w, noise, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, 3, t, h, w, generator=g, dtype=torch.float64) * 2 - 1
    y = (x + noise * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    np.testing.assert_allclose(ssim(x, y)[0].numpy(), _tm_ssim_valid(unit_frames(y), unit_frames(x)).numpy(),
                               rtol=0, atol=1e-12)


def test_tokenbench_psnr_pools_mse_per_video():
    m = PSNRMetric(variant="tokenbench")
    real = torch.zeros(1, 3, 2, 8, 8)
    fake = real.clone()
    fake[:, :, 0] = 0.2  # frame 0: mse 0.01 in [0,1]; frame 1: exact
    stats = m.per_frame(real, fake)[0]
    assert m.reduce_video(stats) == pytest.approx(-10 * np.log10(0.005 + 1e-8))
    # the vidtok variant averages per-frame PSNRs instead (80 dB for the exact frame)
    v = PSNRMetric(variant="vidtok")
    assert v.reduce_video(v.per_frame(real, fake)[0]) == pytest.approx((20 + 80) / 2, abs=1e-3)


@settings(max_examples=25, deadline=None)
@given(t=st.integers(1, 3), h=st.integers(11, 24), w=st.integers(11, 24), seed=st.integers(0, 2**16))
def test_metric_properties_on_arbitrary_shapes(t, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, t, h, w, generator=g, dtype=torch.float64) * 2 - 1
    y = (x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(-1, 1)
    s = ssim(x, y)
    assert s.shape == (2, t) and bool((s <= 1 + 1e-12).all())
    assert torch.allclose(ssim(x, x), torch.ones(2, t, dtype=torch.float64))
    p = psnr(x, y)
    assert p.shape == (2, t) and bool((p < 80).all())
    assert torch.allclose(psnr(x, y), psnr(y, x))


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(1, 9), h=st.integers(1, 7), w=st.integers(1, 7), slab=st.integers(1, 400),
       seed=st.integers(0, 2**31 - 1))
def test_frame_mse_in_slabs_equals_the_whole_clip_formula(b, t, h, w, slab, seed) -> None:
    """On CPUs the MSE runs a few frames at a time (no float64 copies of whole clips): the same per-frame
    values as the formula on the whole clip, whatever the slab size."""
    import importlib

    P = importlib.import_module("vidtok_bench.metrics.psnr")
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(b, 3, t, h, w, generator=g) * 2 - 1
    fake = torch.rand(b, 3, t, h, w, generator=g) * 2 - 1
    want = (((real.double() + 1) / 2 - (fake.double() + 1) / 2) ** 2).mean(dim=(1, 3, 4))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "CPU_SLAB_ELEMS", slab)
        got = P.frame_mse(real, fake)
    assert got.shape == (b, t) and got.dtype == torch.float64
    assert torch.allclose(got, want, rtol=1e-13, atol=0)


@settings(max_examples=40, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(1, 6), start=st.integers(0, 20), n=st.integers(1, 20))
def test_frame_range_is_frames_of_without_copying_a_clip(b, t, start, n) -> None:
    """Metric networks take frames [start, stop) of (B,3,T,H,W) videos: equal to frames_of's rows, and a view of
    the video (no copy) when the range lies in one clip."""
    from vidtok_bench.metrics.base import frame_range, frames_of

    video = torch.randn(b, 3, t, 4, 5)
    start = min(start, b * t - 1)
    got = frame_range(video, start, start + n)
    assert torch.equal(got, frames_of(video)[start:start + n])
    if start // t == (min(start + n, b * t) - 1) // t:
        assert got.untyped_storage().data_ptr() == video.untyped_storage().data_ptr()


@settings(max_examples=20, deadline=None)
@given(b=st.integers(1, 2), t=st.integers(1, 5), h=st.sampled_from([11, 16, 23, 512 + 20]), variant=st.sampled_from(["vidtok", "tokenbench"]),
       seed=st.integers(0, 2**31 - 1))
def test_video_ssim_steps_through_frames_like_the_frame_form(b, t, h, variant, seed) -> None:
    """Videos are scored a few frames at a time straight from the clip (no copies of the whole clip, in float32
    or float64): bit-identical to the image form on every frame, pooled sizes (H >= 384: factor 2) included."""
    import importlib

    from vidtok_bench.metrics.base import frames_of

    S = importlib.import_module("vidtok_bench.metrics.ssim")
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(b, 3, t, h, 24, generator=g) * 2 - 1
    fake = (real + 0.2 * torch.randn(real.shape, generator=g)).clamp(-1, 1)
    if h == 532 and variant == "vidtok":
        real, fake = real.repeat_interleave(17, dim=4)[..., :400], fake.repeat_interleave(17, dim=4)[..., :400]
    got = S.ssim(real, fake, variant)
    assert got.shape == (b, t)
    assert torch.equal(got.reshape(-1), S.ssim_frames(frames_of(real), frames_of(fake), variant))
