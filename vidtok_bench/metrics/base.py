"""Metric plugin interfaces.

Every metric declares its facts once, as ``info = MetricInfo(...)`` on its class (label, unit,
direction, display precision, default gate tolerance, kind, reduction); the runner records them
with each value and report code reads them from the result, never from tables of its own.

* :class:`FrameMetric` (kind ``frame``) scores every frame (PSNR, SSIM, LPIPS); per-clip and
  per-video values and the run's value come from the same per-frame statistics.
* :class:`ClipMetric` (kind ``clip``) gives one statistic per clip.
* :class:`SetMetric` (kind ``set``) compares two *sets* of clips (FVD): computed once over the
  whole run from state that merges exactly across shards — never an average over batches.

Metrics receive tensors the protocol has already prepared (clamped, tail frames removed):
see :mod:`vidtok_bench.scoring`. They do not re-apply protocol facts themselves.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import torch

from ..results import MetricInfo


class Metric(ABC):
    plugin_name: str = ""
    info: ClassVar[MetricInfo]

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch.device(device)

    @property
    def kind(self) -> str:
        return self.info.kind

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Exact definition: variant, network, weights sha256, preprocessing."""


class FrameMetric(Metric):
    """One statistic per frame; ``reduce_video`` / ``reduce_run`` turn them into values."""

    @abstractmethod
    def per_frame(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """real, fake: (B,3,T,H,W) in [-1,1] -> (B,T) float64 per-frame statistics on the CPU."""

    def clip_stats(self, real: torch.Tensor, fake: torch.Tensor) -> list[list[float]]:
        """One list of statistics per clip of the batch (what the per-clip records store)."""
        return self.per_frame(real, fake).tolist()

    def reduce_video(self, stats: Sequence[float]) -> float:
        """A video's (or clip's) value from its statistics; the mean by default."""
        return float(torch.tensor(stats, dtype=torch.float64).mean())

    def reduce_run(self, stats: Sequence[float], video_values: list[float]) -> float:
        """The run's value from every statistic and the per-video values; the mean over all by default."""
        return float(torch.tensor(stats, dtype=torch.float64).mean())


class ClipMetric(FrameMetric):
    """One statistic per clip: ``per_clip`` (B,) replaces ``per_frame``; reductions as frame metrics."""

    @abstractmethod
    def per_clip(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """real, fake: (B,3,T,H,W) in [-1,1] -> (B,) float64 on the CPU."""

    def per_frame(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return self.per_clip(real, fake).reshape(-1, 1)


class SetMetric(Metric):
    """A value of the whole set of clips, from state that merges exactly across batches and shards."""

    def set_reference_key(self, key: str) -> None:
        """Called by the runner before any update: a fingerprint of dataset, preprocessing and
        clip length, so reference (real) features can be cached on disk and reused."""
        self.reference_key = key

    def note_sources(self, sources: dict[str, tuple[int, ...]]) -> None:
        """Called before ``update`` with each clip's source frame numbers (its frame manifest), so
        reference-side state cached on disk can be keyed by exactly the frames it came from."""

    @abstractmethod
    def update(self, real: torch.Tensor, fake: torch.Tensor, clip_ids: list[str]) -> None:
        """Accumulate a batch of clips (B,3,T,H,W) in [-1,1]; ``clip_ids`` are "<video_id>#<clip index>"."""

    @abstractmethod
    def compute(self, order: Sequence[str] | None = None) -> dict[str, Any]:
        """``{'value': float, 'clips': int, ...}`` over everything seen. ``order`` lists video ids in
        dataset order: state is used in that order, so the value never depends on how work was split."""

    def discard(self, clip_ids: list[str]) -> None:
        """Forget the clips of a video that failed part-way, so it does not count."""
        if clip_ids:
            raise NotImplementedError(f"{type(self).__name__} cannot discard clips")

    def state_dict(self) -> dict[str, Any]:
        """Accumulated state as tensors and lists (saved for resume and merged across shards)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the state with ``state``."""

    def merge_state_dict(self, state: dict[str, Any]) -> None:
        """Add another shard's state to this one (exact: no averaging)."""
        raise NotImplementedError(f"{type(self).__name__} cannot merge state")


def clip_order_key(order: Sequence[str] | None):
    """Sort key for clip ids "<video>#<clip>" in dataset order (videos in ``order``, then clip index)."""
    rank = {v: i for i, v in enumerate(order or ())}

    def key(clip_id: str) -> tuple[int, str, int]:
        video, _, index = clip_id.rpartition("#")
        return (rank.get(video, len(rank)), video, int(index) if index.isdigit() else 0)

    return key
