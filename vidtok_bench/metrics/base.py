"""Metric plugin interfaces.

Every metric declares its facts once, as ``info = MetricInfo(...)`` on its class (label, unit,
direction, display precision, default gate tolerance, kind, reduction); the runner records them
with each value and report code reads them from the result, never from tables of its own.

* :class:`FrameMetric` (kind ``frame``) scores every frame (PSNR, SSIM, LPIPS); per-clip and
  per-video values and the run's value come from the same per-frame statistics.
* :class:`ClipMetric` (kind ``clip``) gives one statistic per clip.
* :class:`SetMetric` (kind ``set``) compares two *sets* of clips (FVD): computed once over the
  whole run from state that merges exactly across shards — never an average over batches.
  :class:`AdditiveSetMetric` is a set metric whose state is a sum of per-video parts (counts,
  sums): a failed video's part is dropped exactly and a video counted twice is refused.
* :class:`LatentMetric` is a set metric of the tokenizer's *latents* (codebook use): the runner
  hands it each batch's latent as ``encode`` returned it.

Optional hooks, no-ops by default: :meth:`Metric.bind` (the tokenizer under test and the run's
other metrics, once before any clip) and :meth:`SetMetric.observe_frame_stats` (the per-frame
statistics the run's frame metrics gave the clips of the next ``update``).

Metrics receive tensors the protocol has already prepared (clamped, tail frames removed):
see :mod:`vidtok_bench.scoring`. They do not re-apply protocol facts themselves.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

import torch

from ..config import torch_device
from ..errors import InputShapeError
from ..results import MetricInfo


class Metric(ABC):
    plugin_name: str = ""
    info: ClassVar[MetricInfo]

    def __init__(self, device: str | torch.device = "cpu"):
        self.device = torch_device(device)

    @property
    def kind(self) -> str:
        return self.info.kind

    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Exact definition: variant, network, weights sha256, preprocessing."""

    def bind(self, tokenizer: Any, metrics: dict[str, "Metric"]) -> None:
        """Called once before any clip with the tokenizer under test and the run's metrics (by name).
        Nothing by default; a metric that needs the tokenizer's layout (tiles, chunks) reads it here.
        The spec must not depend on it: the data fingerprint is the same for every tokenizer."""


#: how a frame metric's run value is formed from its statistics: the mean over every frame (the VidTok evaluator), or
#: the mean of each video's value (NVIDIA TokenBench: videos of different lengths weigh the same)
AVERAGES = ("frames", "videos")


class FrameMetric(Metric):
    """One statistic per frame; ``reduce_video`` / ``reduce_run`` turn them into values; ``average`` (:data:`AVERAGES`)
    says which mean the run's value is."""

    average: str = "frames"

    def reduction(self) -> str:
        """The spec's words for ``average``."""
        return "mean over frames" if self.average == "frames" else "mean over videos of each video's mean over frames"

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
        """The run's value from every statistic and the per-video values: the mean ``average`` names."""
        return float(torch.tensor(video_values if self.average == "videos" else stats, dtype=torch.float64).mean())


class NetworkFrameMetric(FrameMetric):
    """A frame metric an image network computes on (real, fake) frame pairs (LPIPS, DISTS): the network is built
    (its weights fetched) on first use, not at config time, and gets ``frame_batch`` frames per call (fewer on
    CPUs: :func:`frames_per_call`)."""

    def __init__(self, device: str | torch.device = "cpu", frame_batch: int = 16):
        super().__init__(device=device)
        self.frame_batch = max(1, int(frame_batch))
        self._model: Any = None

    @abstractmethod
    def build(self) -> Any:
        """The network: ``net(x, y)`` of (N,3,H,W) frame pairs in [-1,1] -> (N,) scores."""

    @property
    def model(self) -> Any:
        if self._model is None:
            self._model = self.build()
        return self._model

    def frames_per_call(self, hw: Sequence[int]) -> int:
        """Frames per network call for frames of size ``hw``."""
        return frames_per_call(self.device, self.frame_batch, hw)

    def per_frame(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return per_frame_pairs(self.model, real, fake, self.frames_per_call(real.shape[-2:]), self.plugin_name)


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

    def observe_frame_stats(self, stats: dict[str, list[list[float]]], clip_ids: list[str]) -> None:
        """Per-frame statistics (metric name -> one list per clip) the run's frame metrics gave the clips
        of the ``update`` call that follows; ignored by default."""

    def state_videos(self) -> set[str] | None:
        """The videos whose clips the state holds (left-out clips included), or None when the metric does not
        say: a resumed run recomputes a finished video the saved state lacks instead of scoring without it."""
        return None

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


def video_of(clip_id: str) -> str:
    """The video id of a clip id "<video_id>#<clip index>"."""
    return clip_id.rpartition("#")[0] or clip_id


def rows_by_video(clip_ids: Sequence[str]) -> list[list[int]]:
    """Indices of ``clip_ids`` grouped by video, videos in order of first appearance."""
    rows: dict[str, list[int]] = {}
    for i, cid in enumerate(clip_ids):
        rows.setdefault(video_of(cid), []).append(i)
    return list(rows.values())


class AdditiveSetMetric(SetMetric):
    """A set metric whose state is a sum of per-video *parts* (counts, float64 sums).

    A video's part is kept apart until the video is finished (the runner saves state after each
    video, after discarding a failed one), so a failed video is dropped exactly; then it is added
    to the total. Shards merge by adding totals; a video counted in two shards is refused. Integer
    counts merge exactly; float64 sums must be kept exact (:mod:`.exactsum`), since shards add them in
    another order than one process does: plain float64 sums would agree only to the last bits.
    Subclasses say what a part is: :meth:`new_part`, :meth:`add_parts`, :meth:`part_state`,
    :meth:`load_part`.
    """

    def __init__(self, device: str | torch.device = "cpu"):
        super().__init__(device=device)
        self._total: Any = None
        self._pending: dict[str, Any] = {}
        self._videos: list[str] = []

    @abstractmethod
    def new_part(self) -> Any:
        """An empty part."""

    @abstractmethod
    def add_parts(self, a: Any, b: Any) -> Any:
        """``a + b`` (exact for counts; may modify and return ``a``)."""

    @abstractmethod
    def part_state(self, part: Any) -> dict[str, Any]:
        """A part as tensors, lists and numbers (``torch.load(weights_only=True)`` reads it back)."""

    @abstractmethod
    def load_part(self, state: dict[str, Any]) -> Any:
        """The inverse of :meth:`part_state`."""

    def part(self, clip_id: str) -> Any:
        """The (pending) part of the clip's video, to add this clip's contribution to."""
        video = video_of(clip_id)
        if video not in self._pending:
            self._pending[video] = self.new_part()
        return self._pending[video]

    def _commit(self) -> None:
        for video, part in self._pending.items():
            if video in self._videos:
                raise ValueError(f"{self.plugin_name or type(self).__name__}: video '{video}' counted twice")
            self._total = part if self._total is None else self.add_parts(self._total, part)
            self._videos.append(video)
        self._pending = {}

    def total(self) -> Any:
        """Every finished video's parts added together (None before any)."""
        self._commit()
        return self._total

    @property
    def videos(self) -> list[str]:
        self._commit()
        return list(self._videos)

    def discard(self, clip_ids: list[str]) -> None:
        for cid in clip_ids:
            self._pending.pop(video_of(cid), None)

    def state_videos(self) -> set[str] | None:
        return set(self.videos)

    def state_dict(self) -> dict[str, Any]:
        total = self.total()
        return {} if total is None else {"videos": list(self._videos), "total": self.part_state(total)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = {}
        self._videos = list(state.get("videos", []))
        self._total = self.load_part(state["total"]) if "total" in state else None

    def merge_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self._commit()
        dup = set(self._videos) & set(state.get("videos", []))
        if dup:
            raise ValueError(f"{self.plugin_name or type(self).__name__} merge: video {sorted(dup)[0]} appears in two shards")
        other = self.load_part(state["total"])
        self._total = other if self._total is None else self.add_parts(self._total, other)
        self._videos += list(state.get("videos", []))


class LatentMetric(AdditiveSetMetric):
    """A set metric of the tokenizer's latents. The runner calls :meth:`update_latent` once per batch
    with the latent exactly as ``tokenizer.encode`` returned it (token ids for discrete tokenizers,
    a float tensor for continuous ones, any object for codecs); :meth:`update` (pixels) does nothing."""

    def update(self, real: torch.Tensor, fake: torch.Tensor, clip_ids: list[str]) -> None:
        pass

    @abstractmethod
    def update_latent(self, latent: Any, tokenizer: Any, pixels: int, clip_ids: list[str]) -> None:
        """``latent`` of the batch's clips ``clip_ids`` (dim 0 = clips when a tensor); ``pixels`` the
        pixels the tokenizer encoded for them (T x H x W summed over the batch, its frame padding included)."""


#: how far past [-1,1] an input may reach (float rounding of a conversion), before it is refused
RANGE_SLACK = 1e-3
_LAYOUTS = {4: "(N,3,H,W)", 5: "(B,3,T,H,W)"}


def check_pixel_range(name: str, what: str, x: torch.Tensor) -> None:
    """``x`` (a source video or frames) lies in [-1,1] up to float rounding: one pass over it. A one-line
    InputShapeError otherwise, with the likely cause when it looks like 0..255 pixels; NaN fails too."""
    lo, hi = (float(e) for e in torch.aminmax(x.detach()))
    if not (lo >= -1 - RANGE_SLACK and hi <= 1 + RANGE_SLACK):  # NaN fails this too
        hint = " (0..255 pixels? x / 127.5 - 1)" if hi > 2 else ""
        raise InputShapeError(f"{name} takes pixels in [-1,1]; {what} spans [{lo:.4g}, {hi:.4g}]{hint}")


def check_pair(name: str, real: Any, fake: Any, ranks: Sequence[int] = (4, 5), values: bool = True) -> None:
    """The inputs every public metric call takes: two floating-point tensors of one shape, in ``ranks`` layouts with
    3 channels, not empty; with ``values`` (one pass over each), ``real`` in [-1,1] and ``fake`` finite (a
    reconstruction may overshoot the range; metrics are defined on it as given). A one-line InputShapeError
    otherwise: a (B,T,3,H,W), uint8 or 0..255 video would get a plausible, wrong score, and mismatched shapes
    would broadcast."""
    layouts = " or ".join(_LAYOUTS[r] for r in ranks)
    if not (isinstance(real, torch.Tensor) and isinstance(fake, torch.Tensor)):
        raise InputShapeError(f"{name} takes two torch tensors {layouts}, got {type(real).__name__} and {type(fake).__name__}")
    if real.shape != fake.shape or real.ndim not in ranks or real.shape[1] != 3:
        raise InputShapeError(f"{name} takes two {layouts} tensors of equal shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if real.numel() == 0:
        raise InputShapeError(f"{name}: empty input of shape {tuple(real.shape)}")
    if not (real.is_floating_point() and fake.is_floating_point()):
        raise InputShapeError(f"{name} takes floating-point pixels in [-1,1], got {real.dtype} and {fake.dtype} "
                              "(uint8 frames: x.float() / 127.5 - 1)")
    if values:
        check_pixel_range(name, "real", real)
        lo, hi = (float(e) for e in torch.aminmax(fake.detach()))
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputShapeError(f"{name}: fake has non-finite values (spans [{lo:.4g}, {hi:.4g}])")


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Pixels in [-1,1] as float64 in [0,1], the range PSNR, SSIM and their relatives are defined on."""
    return (x.double() + 1) / 2


def frames_of(video: torch.Tensor) -> torch.Tensor:
    """(B,3,T,H,W) -> (B*T,3,H,W), frames of clip 0 first."""
    b, c, t, h, w = video.shape
    return video.transpose(1, 2).reshape(b * t, c, h, w)


#: frame pixels per image-network call on CPUs (two 256x256 frames): a CPU gains nothing from bigger batches,
#: and memory grows with them (LPIPS-VGG: ~300 MB per 640x272 pair)
CPU_PIXELS = 2 * 256 * 256


def frames_per_call(device: torch.device, frame_batch: int, hw: Sequence[int]) -> int:
    """``frame_batch`` frames per network call; on CPUs at most :data:`CPU_PIXELS` pixels (at least one frame)."""
    if device.type != "cpu":
        return frame_batch
    return max(1, min(frame_batch, CPU_PIXELS // max(1, int(hw[0]) * int(hw[1]))))


def per_frame_pairs(net: Any, real: torch.Tensor, fake: torch.Tensor, frame_batch: int, name: str) -> torch.Tensor:
    """``net(real_frame, fake_frame)`` for every frame of two (B,3,T,H,W) videos, ``frame_batch`` frames
    per call: (B,T) float64 on the CPU (the shared loop of the image-network frame metrics)."""
    check_pair(name, real, fake, ranks=(5,), values=False)  # the network call checks values per batch
    b, t = real.shape[0], real.shape[2]
    out = [net(frame_range(real, i, i + frame_batch), frame_range(fake, i, i + frame_batch)).double().cpu()
           for i in range(0, b * t, frame_batch)]
    return torch.cat(out).reshape(b, t)


def frame_range(video: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Frames ``[start, stop)`` of :func:`frames_of` (video) without copying the whole video: a view when they
    lie in one clip (frames_of copies a (B,3,T,H,W) clip: two clip-sized copies per metric call), else the
    concatenation of the pieces."""
    b, c, t, h, w = video.shape
    stop = min(stop, b * t)
    pieces = []
    while start < stop:
        clip, s = divmod(start, t)
        e = min(t, s + stop - start)
        pieces.append(video[clip, :, s:e].transpose(0, 1))
        start += e - s
    return pieces[0] if len(pieces) == 1 else torch.cat(pieces)


def clip_order_key(order: Sequence[str] | None):
    """Sort key for clip ids "<video>#<clip>" in dataset order (videos in ``order``, then clip index)."""
    rank = {v: i for i, v in enumerate(order or ())}

    def key(clip_id: str) -> tuple[int, str, int]:
        video, _, index = clip_id.rpartition("#")
        return (rank.get(video, len(rank)), video, int(index) if index.isdigit() else 0)

    return key
