"""Metric plugin interfaces used by the runner.

* :class:`FrameMetric` scores every frame (PSNR, SSIM, LPIPS); the run's value is the mean
  over all frames, and per-clip / per-video means come from the same per-frame values.
* :class:`SetMetric` compares two *sets* of clips (FVD). It is computed once over the
  whole run — never averaged over batches.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch


class Metric(ABC):
    plugin_name: str = ""
    #: direction used by tables and the regression gate
    higher_is_better: bool = True

    def __init__(self, device: str | torch.device = "cpu", **options: Any):
        self.device = torch.device(device)
        self.options = options

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Exact definition: variant, network, weights sha256, preprocessing."""


class FrameMetric(Metric):
    @abstractmethod
    def per_frame(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """real, fake: (B,3,T,H,W) in [-1,1] -> (B,T) float64 per-frame statistics on the CPU."""

    def reduce_video(self, frame_stats: torch.Tensor) -> float:
        """A video's (or clip's) value from its frames' statistics; the mean by default."""
        return float(frame_stats.double().mean())

    def reduce_run(self, frame_stats: torch.Tensor, video_values: list[float]) -> float:
        """The run's value; the mean over all frames by default."""
        return float(frame_stats.double().mean())


class SetMetric(Metric):
    higher_is_better = False

    def set_reference_key(self, key: str) -> None:
        """Called by the runner before any update: a fingerprint of dataset, preprocessing and
        clip length, so reference (real) features can be cached on disk and reused."""
        self.reference_key = key

    @abstractmethod
    def update(self, real: torch.Tensor, fake: torch.Tensor, clip_ids: list[str]) -> None:
        """Accumulate features of a batch of clips (B,3,T,H,W) in [-1,1].

        ``clip_ids`` are stable ids ("<video_id>#<clip index>") keying the reference cache.
        """

    @abstractmethod
    def compute(self) -> dict[str, Any]:
        """{'value': float, 'clips': int, ...} over everything seen."""

    def discard(self, clip_ids: list[str]) -> None:
        """Forget the clips of a video that failed part-way, so it does not count."""
        if clip_ids:
            raise NotImplementedError(f"{type(self).__name__} cannot discard clips")

    def state_dict(self) -> dict[str, Any]:
        """Accumulated features, so an interrupted run can resume (optional)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass
