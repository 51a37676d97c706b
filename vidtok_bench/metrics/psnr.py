"""PSNR, as the VidTok evaluator and TokenBench define it.

* ``vidtok``: per frame, RGB in [0,1], ``-10*log10(mse + 1e-8)``; the run's value is the
  mean over all frames.
* ``tokenbench``: MSE pooled over all frames of a video, PSNR per video, mean over videos.

Inputs are in [-1,1]; reconstructions are clamped to [-1,1] first (the VidTok evaluator does).
"""
from __future__ import annotations

from typing import Any

import torch

from ..errors import check_choice
from ..registry import register_metric
from .base import FrameMetric

EPS = 1e-8
VARIANTS = ("vidtok", "tokenbench")


def _to_unit(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(-1, 1).double() + 1) / 2


def frame_mse(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Per-frame MSE in [0,1] units: (B,3,T,H,W) -> (B,T) float64."""
    d = _to_unit(real) - _to_unit(fake)
    return d.pow(2).mean(dim=(1, 3, 4))


def psnr(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR (dB) of videos (B,3,T,H,W) or images (N,3,H,W) in [-1,1]."""
    if real.ndim == 4:
        return psnr(real.unsqueeze(2), fake.unsqueeze(2))[:, 0]
    return -10 * torch.log10(frame_mse(real, fake) + EPS)


def psnr_from_mse(mse: float | torch.Tensor) -> Any:
    return -10 * torch.log10(torch.as_tensor(mse, dtype=torch.float64) + EPS)


@register_metric("psnr")
class PSNRMetric(FrameMetric):
    higher_is_better = True

    def __init__(self, variant: str = "vidtok", device: str = "cpu", **options: Any):
        super().__init__(device=device, **options)
        self.variant = check_choice("psnr variant", variant, VARIANTS)

    def per_frame(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        # tokenbench pools MSE per video: keep the per-frame MSE and reduce later
        stat = frame_mse(real, fake) if self.variant == "tokenbench" else psnr(real, fake)
        return stat.cpu()

    def reduce_video(self, frame_stats: torch.Tensor) -> float:
        if self.variant == "tokenbench":
            return float(psnr_from_mse(frame_stats.mean()))
        return float(frame_stats.mean())

    def reduce_run(self, frame_stats: torch.Tensor, video_values: list[float]) -> float:
        if self.variant == "tokenbench":
            return float(torch.tensor(video_values, dtype=torch.float64).mean())
        return float(frame_stats.mean())

    def spec(self) -> dict[str, Any]:
        return {
            "metric": "psnr",
            "variant": self.variant,
            "range": "RGB [0,1], reconstruction clamped to [-1,1] first",
            "formula": "-10*log10(mse+1e-8)",
            "reduction": "mean over frames" if self.variant == "vidtok" else "MSE pooled per video, mean over videos",
        }
