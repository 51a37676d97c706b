"""Temporal stability (flicker PSNR of temporal differences, tLPIPS) vs formulas written here in numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from _weights_fixture import seeded_cache_dir
from hypothesis import given, settings, strategies as st

from vidtok_bench.errors import InputShapeError
from vidtok_bench.metrics.psnr import psnr
from vidtok_bench.metrics.temporal import flicker_psnr, per_video, tlpips


def _np_flicker(real: np.ndarray, recon: np.ndarray) -> np.ndarray:
    """-10 log10(mean((Δrecon - Δreal)^2) + 1e-8) per pair, frames in [0,1], straight loops."""
    b, _, t = real.shape[:3]
    r = (real.astype(np.float64) + 1) / 2
    f = (recon.astype(np.float64) + 1) / 2
    out = np.zeros((b, t - 1))
    for i in range(b):
        for j in range(1, t):
            d = (f[i, :, j] - f[i, :, j - 1]) - (r[i, :, j] - r[i, :, j - 1])
            out[i, j - 1] = -10 * np.log10(np.mean(d ** 2) + 1e-8)
    return out


@settings(max_examples=15, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(2, 6), h=st.integers(1, 9), w=st.integers(1, 9),
       noise=st.floats(0.0, 0.6), seed=st.integers(0, 10_000))
def test_flicker_matches_numpy(b: int, t: int, h: int, w: int, noise: float, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(b, 3, t, h, w, generator=g) * 2.2 - 1.1  # inputs are used as given (no clamping inside)
    recon = real + noise * torch.randn(real.shape, generator=g)
    got = flicker_psnr(real, recon)
    assert got.shape == (b, t - 1) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _np_flicker(real.numpy(), recon.numpy()), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(per_video(got).numpy(), got.numpy().mean(1), rtol=1e-15)


def test_alternating_brightness_flickers_more_than_a_constant_offset() -> None:
    g = torch.Generator().manual_seed(0)
    frame = torch.rand(1, 3, 1, 24, 32, generator=g, dtype=torch.float64) - 0.5  # in [-0.5, 0.5]: no clamping
    real = frame.expand(1, 3, 9, 24, 32).contiguous()  # a static video
    d = 0.1  # in [-1,1] units, i.e. 0.05 in [0,1]
    sign = torch.tensor([(-1.0) ** t for t in range(9)], dtype=torch.float64).view(1, 1, 9, 1, 1)
    alternating, constant = real + d * sign, real + d
    assert torch.allclose(psnr(real, alternating), psnr(real, constant), rtol=0, atol=1e-9)  # same per-frame PSNR
    f_alt, f_const = flicker_psnr(real, alternating), flicker_psnr(real, constant)
    assert torch.allclose(f_const, torch.full((1, 8), 80.0, dtype=torch.float64), atol=1e-6)  # -10 log10(1e-8)
    # every pair's error changes by 2 * 0.05 in [0,1] units
    assert torch.allclose(f_alt, torch.full((1, 8), -10 * np.log10(0.1 ** 2 + 1e-8), dtype=torch.float64), atol=1e-6)
    assert (f_alt < f_const - 50).all()
    assert torch.equal(flicker_psnr(real, real), torch.full((1, 8), 80.0, dtype=torch.float64))


def _mean_abs(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x - y).abs().mean((1, 2, 3))


def test_tlpips_plumbing_matches_a_direct_loop() -> None:
    g = torch.Generator().manual_seed(3)
    real = torch.rand(2, 3, 5, 6, 7, generator=g) * 2 - 1
    recon = real + 0.3 * torch.randn(real.shape, generator=g)
    r, f = real.numpy().astype(np.float64), recon.numpy().astype(np.float64)
    want = np.array([[abs(np.abs(f[i, :, j] - f[i, :, j - 1]).mean() - np.abs(r[i, :, j] - r[i, :, j - 1]).mean())
                      for j in range(1, 5)] for i in range(2)])
    for fb in (1, 3, 32):  # chunking must not change the result
        got = tlpips(real, recon, _mean_abs, frame_batch=fb)
        assert got.shape == (2, 4) and got.dtype == torch.float64
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(InputShapeError):
        tlpips(real[:, :, :1], recon[:, :, :1], _mean_abs)
    with pytest.raises(InputShapeError):
        flicker_psnr(real, recon[..., :5])


@pytest.fixture(scope="module")
def lpips_alex(tmp_path_factory):
    from vidtok_bench.metrics.lpips import LPIPS

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDTOK_BENCH_CACHE", str(seeded_cache_dir(tmp_path_factory)))
        return LPIPS("alex", device="cpu", fetch=False)


def test_tlpips_with_real_lpips(lpips_alex) -> None:
    g = torch.Generator().manual_seed(1)
    frame = torch.rand(1, 3, 1, 32, 32, generator=g) - 0.5
    real = (frame + 0.05 * torch.randn(1, 3, 4, 32, 32, generator=g)).contiguous()  # slightly changing frames
    sign = torch.tensor([(-1.0) ** t for t in range(4)]).view(1, 1, 4, 1, 1)
    assert torch.equal(tlpips(real, real, lpips_alex), torch.zeros(1, 3, dtype=torch.float64))
    got = tlpips(real, real + 0.3 * sign, lpips_alex, frame_batch=2)
    want = torch.tensor([[abs(lpips_alex(real[:, :, j] + 0.3 * sign[:, :, j], real[:, :, j - 1] + 0.3 * sign[:, :, j - 1]).item()
                              - lpips_alex(real[:, :, j], real[:, :, j - 1]).item()) for j in range(1, 4)]], dtype=torch.float64)
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)
    assert (got > 0.02).all()  # alternating brightness is visible frame to frame
    static = tlpips(real, real + 0.3, lpips_alex)  # a constant offset changes nothing between frames...
    assert (static < got).all()


@settings(max_examples=30, deadline=None)
@given(b=st.integers(1, 3), t=st.integers(2, 9), h=st.integers(1, 7), w=st.integers(1, 7), slab=st.integers(1, 400),
       seed=st.integers(0, 2**31 - 1))
def test_flicker_in_slabs_equals_the_whole_clip_formula_and_holds_no_whole_clip(b, t, h, w, slab, seed) -> None:
    """On CPUs flicker converts a few frames at a time, as PSNR's MSE does (no float64 copies of a whole clip: 1 GB
    beside one 17-frame 720p clip): per pair the whole-clip formula's value, whatever the slab size."""
    import importlib

    P = importlib.import_module("vidtok_bench.metrics.psnr")  # the package exports a function of that name
    T = importlib.import_module("vidtok_bench.metrics.temporal")

    g = torch.Generator().manual_seed(seed)
    real = torch.rand(b, 3, t, h, w, generator=g) * 2 - 1
    recon = torch.rand(b, 3, t, h, w, generator=g) * 2 - 1
    d = (((recon.double() + 1) / 2) - ((real.double() + 1) / 2)).diff(dim=2)
    want = -10 * torch.log10(d.pow(2).mean(dim=(1, 3, 4)) + 1e-8)
    converted: list[int] = []

    def to_unit(x: torch.Tensor) -> torch.Tensor:
        converted.append(x.shape[2])
        return (x.double() + 1) / 2

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(P, "CPU_SLAB_ELEMS", slab)
        mp.setattr(T, "to_unit", to_unit)
        got = flicker_psnr(real, recon)
    assert got.shape == (b, t - 1) and got.dtype == torch.float64
    assert torch.allclose(got, want, rtol=1e-13, atol=0)
    assert max(converted) <= max(2, slab // (b * 3 * h * w) + 1)  # a slab's frames and the previous slab's last
