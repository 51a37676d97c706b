"""PSNR, as the VidTok evaluator and TokenBench define it.

* ``vidtok``: per frame, RGB in [0,1], ``-10*log10(mse + 1e-8)``; the run's value is the
  mean over all frames.
* ``tokenbench``: MSE pooled over all frames of a video, PSNR per video, mean over videos.

Inputs are in [-1,1]. Clamping the reconstruction is a protocol fact (the VidTok evaluator clamps
once, before every metric), applied by :mod:`vidtok_bench.scoring`, not here.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from ..errors import check_choice
from ..registry import register_metric
from ..results import MetricInfo
from .base import FrameMetric, check_pair, to_unit

EPS = 1e-8
VARIANTS = ("vidtok", "tokenbench")


#: on CPUs, frames per MSE step hold about this many elements: the float64 copies of a whole 17x640x272 clip
#: were ~270 MB at once, beside the model in an overlapped run
CPU_SLAB_ELEMS = 1 << 22


def slab_frames(video: torch.Tensor) -> int:
    """Frames of a (B,3,T,H,W) video one float64 step of a per-frame statistic takes: all on GPUs, on CPUs about
    :data:`CPU_SLAB_ELEMS` elements (at least one frame)."""
    b, c, t, h, w = video.shape
    return t if video.device.type != "cpu" else max(1, CPU_SLAB_ELEMS // max(1, b * c * h * w))


def frame_mse(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Per-frame MSE in [0,1] units: (B,3,T,H,W) -> (B,T) float64 (on CPUs a few frames at a time)."""
    t, step = real.shape[2], slab_frames(real)
    out = []
    for s in range(0, t, step):
        d = to_unit(real[:, :, s:s + step]) - to_unit(fake[:, :, s:s + step])
        out.append(d.square_().mean(dim=(1, 3, 4)))
    return out[0] if len(out) == 1 else torch.cat(out, dim=1)


def psnr(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Per-frame PSNR (dB) of videos (B,3,T,H,W) -> (B,T) or images (N,3,H,W) -> (N,), pixels in [-1,1]."""
    check_pair("psnr", real, fake)
    return frame_psnr(real, fake)


def frame_psnr(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """:func:`psnr` without the input checks (a run's clips are made in range and shape)."""
    if real.ndim == 4:
        return frame_psnr(real.unsqueeze(2), fake.unsqueeze(2))[:, 0]
    return -10 * torch.log10(frame_mse(real, fake) + EPS)


def psnr_from_mse(mse: float | torch.Tensor) -> Any:
    return -10 * torch.log10(torch.as_tensor(mse, dtype=torch.float64) + EPS)


@register_metric("psnr")
class PSNRMetric(FrameMetric):
    """Peak signal-to-noise ratio per frame (vidtok) or from MSE pooled per video (tokenbench)."""

    info = MetricInfo(label="PSNR", unit="dB", higher_is_better=True, precision=2, tolerance="0.05", kind="frame",
                      reduction="vidtok: mean over frames; tokenbench: PSNR of each video's pooled MSE, mean over videos")

    def __init__(self, variant: str = "vidtok", device: str = "cpu"):
        super().__init__(device=device)
        self.variant = check_choice("psnr variant", variant, VARIANTS)
        self.average = "frames" if self.variant == "vidtok" else "videos"

    def per_frame(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        # tokenbench pools MSE per video: keep the per-frame MSE and reduce later
        stat = frame_mse(real, fake) if self.variant == "tokenbench" else frame_psnr(real, fake)
        return stat.cpu()

    def reduce_video(self, stats: Sequence[float]) -> float:
        mean = torch.as_tensor(stats, dtype=torch.float64).mean()
        return float(psnr_from_mse(mean)) if self.variant == "tokenbench" else float(mean)

    def spec(self) -> dict[str, Any]:
        return {
            "metric": "psnr",
            "variant": self.variant,
            "range": "RGB [0,1]",
            "formula": "-10*log10(mse+1e-8)",
            "reduction": "mean over frames" if self.variant == "vidtok" else "MSE pooled per video, mean over videos",
        }
