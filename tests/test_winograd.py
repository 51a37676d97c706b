"""Winograd F(2x2,3x3) and F(4x4,3x3) convolutions against float64 convolutions written independently here."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings, strategies as st

from vidtok_bench.metrics import lpips_net, winograd


def _direct64(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> tuple[np.ndarray, np.ndarray]:
    """The 3x3 / stride 1 / zero-padding 1 convolution by its definition in float64 (numpy sums of shifted
    products), and the same sums of absolute values (the scale a float32 rounding error is relative to)."""
    xs = np.pad(x.double().numpy(), ((0, 0), (0, 0), (1, 1), (1, 1)))
    wd = w.double().numpy()
    h, wd_ = x.shape[2], x.shape[3]
    out = np.zeros((x.shape[0], w.shape[0], h, wd_))
    mag = np.zeros_like(out)
    for i in range(3):
        for j in range(3):
            patch = xs[:, :, i: i + h, j: j + wd_]
            out += np.einsum("nchw,kc->nkhw", patch, wd[:, :, i, j])
            mag += np.einsum("nchw,kc->nkhw", np.abs(patch), np.abs(wd[:, :, i, j]))
    if b is not None:
        out += b.double().numpy()[None, :, None, None]
        mag += np.abs(b.double().numpy())[None, :, None, None]
    return out, mag


#: float32 rounding of each variant relative to (window's largest |input|) x (sum of |taps|): F(4x4)'s transforms
#: have coefficients up to 5 (input) and 8 (output), F(2x2)'s only +-1
ROUNDING = {2: 1e-6, 4: 2e-5}


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 20), k=st.integers(1, 20), h=st.integers(1, 13), w=st.integers(1, 13),
       bias=st.booleans(), band=st.sampled_from([1, 4096, 8 << 20]), tile=st.sampled_from([2, 4]),
       seed=st.integers(0, 2**31 - 1))
def test_conv3x3_is_the_convolution(n, c, k, h, w, bias, band, tile, seed) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, h, w, generator=g)
    wt = torch.randn(k, c, 3, 3, generator=g)
    b = torch.randn(k, generator=g) if bias else None
    got = winograd.conv3x3(x, winograd.transform_filter(wt, tile), b, band_bytes=band)  # band=1: one tile row per band
    want, _ = _direct64(x, wt, b)
    assert got.shape == (n, k, h, w) and got.dtype == torch.float32
    assert got.is_contiguous(memory_format=torch.channels_last)
    # Winograd's intermediate terms mix every tap with every input of the window (and cancel), so its float32
    # rounding is relative to (largest |input| in the window) x (sum of |taps|), summed over input channels
    win = torch.nn.functional.max_pool2d(x.abs().double(), 3, stride=1, padding=1).numpy()
    scale = np.einsum("nchw,kc->nkhw", win, wt.abs().double().sum((2, 3)).numpy())
    if b is not None:
        scale += np.abs(b.double().numpy())[None, :, None, None]
    err = np.abs(got.double().numpy() - want)
    assert (err <= ROUNDING[tile] * scale + 1e-30).all(), float((err / (scale + 1e-30)).max())


@pytest.mark.parametrize("tile,bound", [(2, 4e-7), (4, 4e-6)])
@pytest.mark.parametrize("c,k,h,w", [(256, 512, 12, 20), (512, 512, 17, 9)])
def test_float32_rounding_only_on_a_wide_layer(c, k, h, w, tile, bound) -> None:
    """A VGG conv4/conv5-like layer (ReLU inputs, He-scaled weights, 2304-4608 products per output): each output
    is within a few float32 ulps of the sum of absolute products for F(2x2) (measured: 1.0-1.6e-7 relative;
    oneDNN's channels-last direct kernel 2.7-2.9e-7), within ~20 for F(4x4) (measured 1.4-2.5e-6)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, c, h, w, generator=g).relu()
    wt = torch.randn(k, c, 3, 3, generator=g) * (2 / (c * 9)) ** 0.5
    b = torch.randn(k, generator=g) * 0.1
    want, mag = _direct64(x, wt, b)
    got = winograd.conv3x3(x, winograd.transform_filter(wt, tile), b).double().numpy()
    assert (np.abs(got - want) / mag).max() <= bound


def test_module_swap_takes_only_wide_3x3_stride1_convs() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(256, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 300, 3, padding=1),
                        nn.Conv2d(300, 4, 3, padding=1, stride=2), nn.Conv2d(300, 4, 1), nn.Conv2d(255, 4, 3, padding=1),
                        nn.Sequential(nn.Conv2d(512, 4, 3, padding=1, bias=False)))
    assert winograd.swap_wide_convs(net) == ["0", "6.0"]
    assert isinstance(net[0], winograd.WinogradConv3x3) and isinstance(net[6][0], winograd.WinogradConv3x3)
    assert all(isinstance(net[i], nn.Conv2d) for i in (2, 3, 4, 5))
    x = torch.randn(1, 512, 6, 5)
    assert net[6][0].bias is None and net[6][0](x).shape == (1, 4, 6, 5)
    with pytest.raises(ValueError, match="3x3 stride-1"):
        winograd.WinogradConv3x3(nn.Conv2d(4, 4, 3, padding=1, stride=2))


def test_swapped_conv_computes_the_conv_and_holds_no_weights() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 6, 3, padding=1)
    net = nn.Sequential(conv)
    winograd.swap_wide_convs(net, min_channels=8)
    new = net[0]
    # the taps (the weights' size), not the 4x larger F(4x4) filters, which each call makes from them
    assert list(new.state_dict()) == ["taps", "bias"] and new.taps.shape == (9, 8, 6) and new.tile == 4
    assert torch.equal(new.taps[4], conv.weight[:, :, 1, 1].t())
    assert torch.allclose(new.filters(), winograd.transform_filter(conv.weight), rtol=0, atol=1e-6)
    assert new.bias is not conv.bias and torch.equal(new.bias, conv.bias)  # a plain tensor, not the Parameter
    x = torch.randn(2, 8, 5, 7)
    with torch.inference_mode():
        fast, plain = new(x), conv(x)
    assert not torch.equal(fast, plain) and torch.allclose(fast, plain, rtol=0, atol=1e-5)  # Winograd ran (outputs ~1)


def test_which_lpips_trunk_convs_are_wide() -> None:
    """VGG: conv3_2 onwards (>= 256 input channels), by the package's key names; AlexNet: conv4 and conv5."""
    vgg = lpips_net.build("vgg", device="cpu")
    assert winograd.swap_wide_convs(vgg.net) == ["slice3.12", "slice3.14", "slice4.17", "slice4.19", "slice4.21",
                                                "slice5.24", "slice5.26", "slice5.28"]
    alex = lpips_net.build("alex", device="cpu")
    assert winograd.swap_wide_convs(alex.net) == ["slice4.8", "slice5.10"]


def test_filters_scratch_serves_calls_in_and_outside_inference_mode() -> None:
    """A swapped conv transforms its taps into a per-thread scratch buffer for each call, with tile transforms
    cached per device: those made during an inference-mode call must serve the next call outside it too (and the
    other way round)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(6, 5, 3, padding=1), nn.Conv2d(5, 7, 3, padding=1))
    want = net(torch.ones(1, 6, 4, 4)).detach()
    winograd._tile_matrices.cache_clear()  # the cached B^T, A^T too: first made inside inference mode here
    winograd.swap_wide_convs(net, min_channels=1)
    x = torch.ones(1, 6, 4, 4)
    with torch.inference_mode():
        inside = net(x)
    outside = net(x)
    assert torch.equal(inside, outside) and torch.allclose(outside, want, rtol=0, atol=1e-5)
