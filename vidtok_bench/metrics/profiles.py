"""Error profiles: where inside the tokenizer's clip, temporal chunk or spatial tile errors grow.

A :class:`Profile` accumulates ``key -> (sum, count)`` of per-frame (or per-pixel) values for
integer keys >= 0: exact float64 sums (:mod:`.exactsum`), int64 counts, mergeable across clips/shards/processes
with the same numbers in any order.
The keys are

* the frame's **position** inside the tokenizer's clip (:func:`clip_positions`: ``t mod clip_len``;
  causal VidTok encodes frame 0 of each clip alone) -> first-frame penalty, worst position;
* the frame's **distance to the nearest temporal chunk boundary** (:func:`boundary_distance`) ->
  boundary penalty of chunked (long-video) modes;
* a pixel's **distance to the nearest spatial tile boundary** (:func:`tile_distance_map`) ->
  the same penalty for spatially tiled encoding/decoding.

Distances: a boundary ``e`` lies between index ``e-1`` and ``e``; index ``i``'s distance to it is
``min(|i - e|, |i - (e-1)|)``, so both neighbours of a boundary have distance 0. In 2-D a pixel's
distance is the smaller of its row and column distances.

Summary figures (definitions; "worse" follows ``higher_is_better``):

* ``mean(k) = sum_k / count_k``; ``rest = (sum over k>=1 of sum_k) / (sum over k>=1 of count_k)``
  (pooled over frames/pixels, not over keys);
* :meth:`Profile.penalty` = ``rest - mean(0)`` if higher is better (PSNR: dB lost at key 0),
  ``mean(0) - rest`` otherwise (squared error): positive means key 0 is worse. With position keys
  it is the **first-frame penalty**; with boundary-distance keys the **boundary penalty**
  (frames/pixels adjacent to a boundary against all others);
* :meth:`Profile.worst` = the key with the worst mean.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import torch

from ..registry import register_metric
from ..results import MetricInfo
from .base import AdditiveSetMetric, rows_by_video, to_unit
from .exactsum import ExactSums
from .psnr import frame_psnr, psnr_from_mse, slab_frames


class Profile:
    """``key -> (sum, count)`` accumulator over integer keys >= 0 (see module doc)."""

    def __init__(self, higher_is_better: bool = True, device: str | torch.device | None = None):
        self.higher_is_better = bool(higher_is_better)
        self.device = torch.device(device if device is not None else "cpu")
        self.exact = ExactSums()
        self.counts = torch.zeros(0, dtype=torch.int64, device=self.device)

    @property
    def sums(self) -> torch.Tensor:
        """(n,) float64 per-key sums (each exact sum rounded once)."""
        return self.exact.values(self.device)

    def _grow(self, n: int) -> None:
        self.exact.grow(n)
        if n > len(self.counts):
            self.counts = torch.cat([self.counts, self.counts.new_zeros(n - len(self.counts))])

    def update(self, values: torch.Tensor, keys: torch.Tensor) -> None:
        """Add ``values`` at ``keys`` (integer, broadcastable to ``values``; e.g. (B,T) PSNRs with (T,) positions)."""
        keys = torch.as_tensor(keys, device=values.device)
        if keys.is_floating_point():
            raise TypeError(f"profile keys must be integers, got {keys.dtype}")
        v, k = torch.broadcast_tensors(values.double(), keys.long())
        v, k = v.reshape(-1), k.reshape(-1)
        if k.numel() == 0:
            return
        if int(k.min()) < 0:
            raise ValueError("profile keys must be >= 0")
        n = int(k.max()) + 1
        self._grow(n)
        self.exact.add(torch.bincount(k, weights=v, minlength=n))
        self.counts[:n] += torch.bincount(k, minlength=n).to(self.device)

    def merge(self, other: "Profile") -> "Profile":
        """Add ``other``'s sums and counts into this profile and return it."""
        n = len(other.counts)
        self._grow(n)
        self.exact.merge(other.exact)
        self.counts[:n] += other.counts.to(self.device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"partials": self.exact.to_tensor(), "counts": self.counts.cpu().clone(),
                "higher_is_better": torch.tensor(self.higher_is_better)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """A :meth:`state_dict`, or an older one with plain float64 ``sums``."""
        sums = state["partials"] if "partials" in state else state["sums"]
        if sums.shape[0] != state["counts"].shape[0]:
            raise ValueError("profile state: sums and counts differ in length")
        self.exact = ExactSums.from_tensor(sums)
        self.counts = state["counts"].to(self.device, torch.int64).clone()
        self.higher_is_better = bool(state.get("higher_is_better", self.higher_is_better))

    # -------------------------------------------------------------- summaries
    def means(self) -> torch.Tensor:
        """Per-key means (float64; NaN where a key has no values)."""
        return self.sums / self.counts.double()

    def penalty(self) -> float:
        """How much worse key 0 is than all other keys pooled (module doc); NaN if either side is empty."""
        rest_n = int(self.counts[1:].sum()) if len(self.counts) > 1 else 0
        if not len(self.counts) or int(self.counts[0]) == 0 or rest_n == 0:
            return float("nan")
        diff = self.exact.pooled(range(1, len(self.exact))) / rest_n - self.exact.pooled([0]) / int(self.counts[0])
        return diff if self.higher_is_better else -diff

    def worst(self) -> int:
        """The key with the worst mean (lowest if higher is better), among keys that have values."""
        m = self.means()
        m = torch.where(self.counts > 0, m, torch.full_like(m, float("inf") if self.higher_is_better else float("-inf")))
        return int(m.argmin() if self.higher_is_better else m.argmax())

    def summary(self) -> dict[str, Any]:
        return {"means": self.means().cpu().tolist(), "counts": self.counts.cpu().tolist(),
                "penalty": self.penalty(), "worst": self.worst() if int(self.counts.sum()) else None,
                "higher_is_better": self.higher_is_better}


# ------------------------------------------------------------------ keys
def clip_positions(num_frames: int, clip_len: int, device: str | torch.device | None = None) -> torch.Tensor:
    """(T,) int64 position of each frame inside consecutive non-overlapping clips: ``t mod clip_len``."""
    return torch.arange(num_frames, device=device) % int(clip_len)


def boundary_distance(length: int, boundaries: Iterable[int], device: str | torch.device | None = None) -> torch.Tensor:
    """(length,) int64 distance of each index to the nearest boundary (both neighbours of a boundary: 0).

    Boundaries outside ``1..length-1`` (the signal's own ends) are ignored; at least one must remain.
    """
    edges = sorted({int(e) for e in boundaries if 0 < int(e) < length})
    if not edges:
        raise ValueError(f"no boundary inside 1..{length - 1}: {list(boundaries)}")
    i = torch.arange(length, device=device).unsqueeze(1)
    e = torch.tensor(edges, device=device).unsqueeze(0)
    return torch.minimum((i - e).abs(), (i - (e - 1)).abs()).amin(1)


def tile_edges(length: int, tile: int, overlap: int = 0) -> list[int]:
    """Interior tile boundaries along one axis: tiles start at ``0, s, 2s, ... < length``
    (``s = tile - overlap``, as diffusers' tiled VAEs do); every start > 0 and every end
    ``start + tile < length`` is a boundary."""
    stride = int(tile) - int(overlap)
    if stride <= 0:
        raise ValueError(f"tile overlap {overlap} must be smaller than the tile size {tile}")
    starts = range(0, int(length), stride)
    return sorted({s for s in starts if s > 0} | {s + tile for s in starts if s + tile < length})


def tile_distance_map(height: int, width: int, tile: int | Sequence[int], overlap: int | Sequence[int] = 0,
                      device: str | torch.device | None = None) -> torch.Tensor:
    """(H,W) int64 pixel distance to the nearest spatial tile boundary (row or column; module doc).

    ``tile``/``overlap`` are one int or (height, width) pairs. An axis without interior boundaries
    (one tile covers it) contributes distance ``max(H, W)``.
    """
    (th, tw), (oh, ow) = (_pair(tile), _pair(overlap))
    far = max(height, width)

    def axis(n: int, t: int, o: int) -> torch.Tensor:
        edges = tile_edges(n, t, o)
        return boundary_distance(n, edges, device) if edges else torch.full((n,), far, device=device)

    return torch.minimum(axis(height, th, oh).unsqueeze(1), axis(width, tw, ow).unsqueeze(0))


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def squared_error_map(real: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """(B,3,T,H,W) in [-1,1] -> (B,T,H,W) float64 squared error in [0,1] units, mean over RGB
    (clamped as :func:`~vidtok_bench.metrics.psnr.psnr` does, so its per-frame mean is PSNR's MSE)."""
    return (to_unit(recon) - to_unit(real)).pow(2).mean(dim=1)


def spatial_profile(real: torch.Tensor, recon: torch.Tensor, tile: int | Sequence[int],
                    overlap: int | Sequence[int] = 0, profile: Profile | None = None) -> Profile:
    """Pool the squared-error map of a batch by tile-boundary distance into ``profile`` (a new
    lower-is-better :class:`Profile` if None) and return it.

    On CPUs a slab of frames at a time (:func:`~.psnr.slab_frames`, as PSNR's MSE): the float64 map of a whole
    clip, with its keys expanded beside it, was ~1 GB beyond one 17-frame 720p clip."""
    t, h, w = real.shape[2:]
    keys = tile_distance_map(h, w, tile, overlap, device=real.device)
    prof = profile if profile is not None else Profile(higher_is_better=False, device=real.device)
    step = slab_frames(real)
    for s in range(0, t, step):
        prof.update(squared_error_map(real[:, :, s:s + step], recon[:, :, s:s + step]), keys)
    return prof


def chunk_positions(num_frames: int, t_starts: Sequence[int]) -> torch.Tensor:
    """(T,) int64 position of each frame inside its temporal chunk (chunks start at ``t_starts``, 0 first)."""
    starts = torch.tensor(sorted({0, *(int(s) for s in t_starts if 0 <= int(s) < num_frames)}))
    t = torch.arange(num_frames)
    return t - starts[torch.searchsorted(starts, t, right=True) - 1]


def penalty_db(mse: Profile) -> float:
    """Boundary penalty in dB from a squared-error profile: PSNR of the pooled MSE of keys >= 1 minus
    PSNR of the pooled MSE at key 0 (``-10 log10(mse + 1e-8)`` as PSNR); NaN when either side is empty."""
    c = mse.counts
    if not len(c) or int(c[0]) == 0 or len(c) < 2 or int(c[1:].sum()) == 0:
        return float("nan")
    rest = mse.exact.pooled(range(1, len(c))) / int(c[1:].sum())
    return float(psnr_from_mse(rest) - psnr_from_mse(mse.exact.pooled([0]) / int(c[0])))


PROFILE_SPEC = {
    "name": "profile",
    "psnr": "per-frame PSNR as psnr variant vidtok: -10*log10(mse+1e-8), RGB [0,1]",
    "position": "frame index inside the tokenizer's clip (the clip it encodes), or inside its temporal chunk "
                "when the tokenizer codes clips in chunks (tokenizer.tile_layout: t_starts)",
    "chunk_boundary_distance": "frames to the nearest interior chunk start (both neighbours of a boundary: 0)",
    "tile_distance": "pixels to the nearest interior spatial tile boundary (row or column; tokenizer.tile_layout: "
                     "tile, overlap); squared error pooled per distance",
    "first_frame_penalty_db": "mean PSNR of frames at positions >= 1 (pooled over frames) - mean PSNR at position 0",
    "worst_position": "position with the lowest mean PSNR",
    "boundary_penalty_db": "frames at chunk-boundary distance >= 1 against distance 0: mean PSNR difference",
    "spatial_boundary_penalty_db": "PSNR of the pooled MSE of pixels at tile distance >= 1 - PSNR at distance 0",
    "lpips": "with lpips=true and an lpips metric in the run, its per-frame values profiled by position too "
             "(penalty in LPIPS units, positive = position 0 worse)",
    "frames": "the frames the protocol scores (tail frames as the protocol says)",
}


@register_metric("profile")
class ProfileMetric(AdditiveSetMetric):
    """Error profiles: PSNR (and LPIPS) by frame position in the tokenizer's clip/chunk and by distance to chunk and tile seams."""

    info = MetricInfo(label="First-frame penalty", unit="dB", higher_is_better=False, precision=2, tolerance="0.1",
                      kind="set", reduction="mean PSNR of frames at positions >= 1 of the tokenizer's clips (or chunks), "
                                        "pooled over frames, minus that of the frames at position 0")

    def __init__(self, device: str | torch.device = "cpu", lpips: bool = True):
        super().__init__(device=device)
        self.lpips = bool(lpips)
        self.tokenizer: Any = None
        self._lpips_name: str | None = None
        self._frame_stats: dict[str, list[list[float]]] = {}

    def spec(self) -> dict[str, Any]:
        return {**PROFILE_SPEC, "lpips_profiled": self.lpips}

    def bind(self, tokenizer: Any, metrics: dict[str, Any]) -> None:
        from .lpips import LPIPSMetric

        self.tokenizer = tokenizer
        self._lpips_name = next((n for n, m in metrics.items() if isinstance(m, LPIPSMetric)), None) if self.lpips else None

    # -------------------------------------------------------------- parts: {"clips": n, "layout": {...}, name: Profile}
    def new_part(self) -> dict[str, Any]:
        return {"clips": 0, "layout": {}, "profiles": {}}

    def add_parts(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        a["clips"] += b["clips"]
        a["layout"] = a["layout"] or b["layout"]
        for name, prof in b["profiles"].items():
            if name in a["profiles"]:
                a["profiles"][name].merge(prof)
            else:
                a["profiles"][name] = prof
        return a

    def part_state(self, part: dict[str, Any]) -> dict[str, Any]:
        return {"clips": part["clips"], "layout": dict(part["layout"]),
                "profiles": {n: p.state_dict() for n, p in part["profiles"].items()}}

    def load_part(self, state: dict[str, Any]) -> dict[str, Any]:
        profiles = {}
        for name, st in state["profiles"].items():
            profiles[name] = Profile(bool(st["higher_is_better"]))
            profiles[name].load_state_dict(st)
        return {"clips": int(state["clips"]), "layout": dict(state["layout"]), "profiles": profiles}

    @staticmethod
    def _add(part: dict[str, Any], name: str, higher_is_better: bool, values: torch.Tensor, keys: torch.Tensor) -> None:
        if name not in part["profiles"]:
            part["profiles"][name] = Profile(higher_is_better)
        part["profiles"][name].update(values, keys)

    #: axis labels of each profile (``profile-plot`` draws ``plot`` against the key)
    AXES = {
        "psnr_by_position": ("frame position in the tokenizer's clip / chunk", "PSNR (dB)"),
        "lpips_by_position": ("frame position in the tokenizer's clip / chunk", "LPIPS"),
        "psnr_by_chunk_boundary_distance": ("frames to the nearest temporal chunk boundary", "PSNR (dB)"),
        "mse_by_tile_distance": ("pixels to the nearest spatial tile boundary", "PSNR of the pooled MSE (dB)"),
    }

    def describe(self, name: str, prof: Profile) -> dict[str, Any]:
        """A profile's summary with its axis labels and the series to plot (MSE drawn as PSNR)."""
        out = {**prof.summary(), "x_label": self.AXES[name][0], "y_label": self.AXES[name][1], "plot": "means"}
        if name == "mse_by_tile_distance":
            out["psnr_db"] = psnr_from_mse(prof.means()).tolist()
            out["plot"] = "psnr_db"
        return out

    # -------------------------------------------------------------- accumulate
    def observe_frame_stats(self, stats: dict[str, list[list[float]]], clip_ids: list[str]) -> None:
        self._frame_stats = stats

    def update(self, real: torch.Tensor, fake: torch.Tensor, clip_ids: list[str]) -> None:
        _, _, t, h, w = real.shape
        layout = (self.tokenizer.tile_layout(t, h, w) if self.tokenizer is not None else None) or {}
        starts = [int(s) for s in layout.get("t_starts") or ()]
        pos = chunk_positions(t, starts) if starts else clip_positions(t, t)
        interior = [s for s in starts if 0 < s < t]
        bdist = boundary_distance(t, interior) if interior else None
        tile = layout.get("tile")
        per_frame = frame_psnr(real, fake).cpu()  # (B,T) float64
        lp = self._frame_stats.get(self._lpips_name) if self._lpips_name else None
        lp = torch.tensor(lp, dtype=torch.float64) if lp and all(len(x) == t for x in lp) else None
        self._frame_stats = {}
        for idx in rows_by_video(clip_ids):
            part = self.part(clip_ids[idx[0]])
            part["clips"] += len(idx)
            if not part["layout"] and layout:
                part["layout"] = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in layout.items()
                                  if k != "t_starts"}
            for i in idx:  # clip by clip: each clip's sums, so the numbers never depend on the batch size
                self._add(part, "psnr_by_position", True, per_frame[i], pos)
                if lp is not None:
                    self._add(part, "lpips_by_position", False, lp[i], pos)
                if bdist is not None:
                    self._add(part, "psnr_by_chunk_boundary_distance", True, per_frame[i], bdist)
                if tile:
                    if "mse_by_tile_distance" not in part["profiles"]:
                        part["profiles"]["mse_by_tile_distance"] = Profile(higher_is_better=False)
                    spatial_profile(real[i:i + 1], fake[i:i + 1], tile, layout.get("overlap") or 0,
                                    part["profiles"]["mse_by_tile_distance"])

    def compute(self, order: Sequence[str] | None = None) -> dict[str, Any]:
        part = self.total()
        if part is None:
            return {"value": None, "clips": 0}
        profiles = part["profiles"]
        pos = profiles.get("psnr_by_position")
        first = pos.penalty() if pos is not None else float("nan")
        details: dict[str, Any] = {
            "first_frame_penalty_db": first,
            "worst_position": pos.worst() if pos is not None and int(pos.counts.sum()) else None,
            "boundary_penalty_db": profiles["psnr_by_chunk_boundary_distance"].penalty()
            if "psnr_by_chunk_boundary_distance" in profiles else None,
            "spatial_boundary_penalty_db": penalty_db(profiles["mse_by_tile_distance"])
            if "mse_by_tile_distance" in profiles else None,
            "lpips_first_frame_penalty": profiles["lpips_by_position"].penalty() if "lpips_by_position" in profiles else None,
            "layout": part["layout"],
            "profiles": {name: self.describe(name, p) for name, p in profiles.items()},
        }
        out: dict[str, Any] = {"value": first, "clips": part["clips"], "details": details}
        if not first == first:  # NaN
            out["warning"] = "no first-frame penalty: every clip has a single scored frame"
        return out


__all__ = ["PROFILE_SPEC", "Profile", "ProfileMetric", "boundary_distance", "chunk_positions", "clip_positions",
           "penalty_db", "spatial_profile", "squared_error_map", "tile_distance_map", "tile_edges"]
