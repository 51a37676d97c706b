"""SSIM, as the VidTok evaluator and TokenBench define it.

* ``vidtok``: Wang et al.'s reference: each frame first average-pooled by
  ``f = max(1, round(min(H, W) / 256))``, then an 11x11 Gaussian window (sigma 1.5),
  K = (0.01, 0.03), "valid" filtering, computed per RGB channel in [0,1] and averaged.
* ``tokenbench``: scikit-image's defaults: 7x7 uniform window, sample covariance
  (N/(N-1)), per channel, border of 3 px excluded (= valid filtering), averaged.

The run's value is the mean over frames. Inputs are used as given: clamping is the protocol's
(:mod:`vidtok_bench.scoring`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from ..errors import check_choice
from ..registry import register_metric
from ..results import MetricInfo
from .base import FrameMetric, check_pair, frame_range, to_unit

VARIANTS = ("vidtok", "tokenbench")
#: frame pixels per SSIM pass (the float64 maps of one 256x256 frame are ~8 MB)
SSIM_PIXELS = 256 * 256
K1, K2 = 0.01, 0.03


def _gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _valid_filter(x: torch.Tensor, kernel: torch.Tensor, dim: int) -> torch.Tensor:
    """'valid' correlation of x with ``kernel`` along ``dim``: a weighted sum of k shifted views
    (k multiply-adds per output; a band-matrix product does n per output, 60x more at 640 wide)."""
    k, n = kernel.numel(), x.shape[dim]
    out = x.narrow(dim, 0, n - k + 1) * float(kernel[0])
    for j in range(1, k):
        out.add_(x.narrow(dim, j, n - k + 1), alpha=float(kernel[j]))
    return out


def _ssim_map(x: torch.Tensor, y: torch.Tensor, kernel: torch.Tensor, cov_norm: float) -> torch.Tensor:
    """x, y: (N,C,H,W) float64 in [0,1]; separable window ``outer(kernel, kernel)``, valid filtering.

    The window is applied as two 1D passes of shifted multiply-adds in float64 (the same sums as the
    window, to float64 rounding; faster on CPU than float64 convolutions or band-matrix products).
    """
    maps = torch.stack([x, y, x * x, y * y, x * y])
    mx, my, exx, eyy, exy = _valid_filter(_valid_filter(maps, kernel, -1), kernel, -2)
    sxx = cov_norm * (exx - mx * mx)
    syy = cov_norm * (eyy - my * my)
    sxy = cov_norm * (exy - mx * my)
    c1, c2 = K1**2, K2**2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def gaussian_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Wang et al.'s SSIM without the pooling step (their ``ssim_index.m``): images (N,C,H,W) in [0,1] -> (N,),
    the mean over channels and valid positions. The ``vidtok`` variant is this after average-pooling by f."""
    return _ssim_map(x.double(), y.double(), _gaussian_1d(11, 1.5), 1.0).mean(dim=(1, 2, 3))


def ssim_frames(real: torch.Tensor, fake: torch.Tensor, variant: str = "vidtok") -> torch.Tensor:
    """SSIM per image: (N,3,H,W) in [-1,1] -> (N,) float64."""
    return _ssim_in_steps(lambda i, j: (real[i:j], fake[i:j]), real.shape[0], real.shape[-2:], variant)


def _ssim_in_steps(frames: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]], n: int, size: Sequence[int],
                   variant: str) -> torch.Tensor:
    """SSIM of ``n`` image pairs of ``size`` (H, W), ``frames(i, j)`` giving pairs [i, j) in [-1,1], a few at a time:
    the float64 maps of a whole clip (5 x 3 x T x H x W) would be ~700 MB at 17x640x272 (its float64 copies
    alone ~135 MB), and passes over cache-sized chunks run faster."""
    h, w = (int(v) for v in size)
    if variant == "vidtok":
        f = max(1, round(min(h, w) / 256))
        kernel, cov_norm = _gaussian_1d(11, 1.5), 1.0
    elif variant == "tokenbench":
        f, kernel, cov_norm = 1, torch.full((7,), 1 / 7, dtype=torch.float64), 49 / 48
    else:
        check_choice("ssim variant", variant, VARIANTS)
        raise AssertionError(variant)
    k = kernel.numel()
    if min(h // f, w // f) < k:
        from ..errors import InputShapeError

        raise InputShapeError(f"ssim ({variant}) needs frames of at least {k}x{k} after pooling, got {(h // f, w // f)}")
    step = max(1, SSIM_PIXELS // ((h // f) * (w // f)))
    out = []
    for i in range(0, n, step):
        xr, xf = frames(i, min(n, i + step))
        x, y = to_unit(xr), to_unit(xf)
        if f > 1:
            x, y = F.avg_pool2d(x, f), F.avg_pool2d(y, f)
        out.append(_ssim_map(x, y, kernel, cov_norm).mean(dim=(1, 2, 3)))
    return torch.cat(out)


def ssim(real: torch.Tensor, fake: torch.Tensor, variant: str = "vidtok") -> torch.Tensor:
    """Per-frame SSIM of videos (B,3,T,H,W) -> (B,T), or images (N,3,H,W) -> (N,); inputs in [-1,1]."""
    check_pair("ssim", real, fake)
    return frame_ssim(real, fake, variant)


def frame_ssim(real: torch.Tensor, fake: torch.Tensor, variant: str = "vidtok") -> torch.Tensor:
    """:func:`ssim` without the input checks (a run's clips are made in range and shape)."""
    if real.ndim == 4:
        return ssim_frames(real, fake, variant)
    b, c, t, h, w = real.shape
    return _ssim_in_steps(lambda i, j: (frame_range(real, i, j), frame_range(fake, i, j)), b * t, (h, w), variant).reshape(b, t)


@register_metric("ssim")
class SSIMMetric(FrameMetric):
    """Structural similarity per frame (Gaussian 11 as the VidTok evaluator, or scikit-image defaults)."""

    info = MetricInfo(label="SSIM", higher_is_better=True, precision=4, tolerance="0.002", kind="frame",
                      reduction="vidtok: mean over frames; tokenbench: each video's mean over frames, mean over videos")

    def __init__(self, variant: str = "vidtok", device: str = "cpu"):
        super().__init__(device=device)
        self.variant = check_choice("ssim variant", variant, VARIANTS)
        # TokenBench's metrics_cli averages each video's frames, then the videos
        self.average = "frames" if self.variant == "vidtok" else "videos"

    def per_frame(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return frame_ssim(real, fake, self.variant).cpu()

    def spec(self) -> dict[str, Any]:
        if self.variant == "vidtok":
            d = {"window": "gaussian 11x11 sigma 1.5", "pool": "avg, factor max(1, round(min(H,W)/256))", "covariance": "population"}
        else:
            d = {"window": "uniform 7x7", "pool": None, "covariance": "sample (N/(N-1))"}
        return {"metric": "ssim", "variant": self.variant, "K": [K1, K2], "filtering": "valid", "channels": "RGB [0,1] per channel, averaged", "reduction": self.reduction(), **d}
