"""Error profiles: where inside the tokenizer's clip, temporal chunk or spatial tile errors grow.

A :class:`Profile` accumulates ``key -> (sum, count)`` of per-frame (or per-pixel) values for
integer keys >= 0: float64 sums, int64 counts, mergeable across clips/shards/processes.
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

from .psnr import _to_unit


class Profile:
    """``key -> (sum, count)`` accumulator over integer keys >= 0 (see module doc)."""

    def __init__(self, higher_is_better: bool = True, device: str | torch.device | None = None):
        self.higher_is_better = bool(higher_is_better)
        self.device = torch.device(device if device is not None else "cpu")
        self.sums = torch.zeros(0, dtype=torch.float64, device=self.device)
        self.counts = torch.zeros(0, dtype=torch.int64, device=self.device)

    def _grow(self, n: int) -> None:
        if n > len(self.counts):
            pad = n - len(self.counts)
            self.sums = torch.cat([self.sums, self.sums.new_zeros(pad)])
            self.counts = torch.cat([self.counts, self.counts.new_zeros(pad)])

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
        self.sums[:n] += torch.bincount(k, weights=v, minlength=n).to(self.device)
        self.counts[:n] += torch.bincount(k, minlength=n).to(self.device)

    def merge(self, other: "Profile") -> "Profile":
        """Add ``other``'s sums and counts into this profile and return it."""
        n = len(other.counts)
        self._grow(n)
        self.sums[:n] += other.sums.to(self.device)
        self.counts[:n] += other.counts.to(self.device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"sums": self.sums.cpu().clone(), "counts": self.counts.cpu().clone(),
                "higher_is_better": torch.tensor(self.higher_is_better)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["sums"].shape != state["counts"].shape:
            raise ValueError("profile state: sums and counts differ in length")
        self.sums = state["sums"].to(self.device, torch.float64).clone()
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
        diff = float(self.sums[1:].sum()) / rest_n - float(self.sums[0]) / int(self.counts[0])
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
    return (_to_unit(recon) - _to_unit(real)).pow(2).mean(dim=1)


def spatial_profile(real: torch.Tensor, recon: torch.Tensor, tile: int | Sequence[int],
                    overlap: int | Sequence[int] = 0, profile: Profile | None = None) -> Profile:
    """Pool the squared-error map of a batch by tile-boundary distance into ``profile`` (a new
    lower-is-better :class:`Profile` if None) and return it."""
    err = squared_error_map(real, recon)
    prof = profile if profile is not None else Profile(higher_is_better=False, device=err.device)
    prof.update(err, tile_distance_map(err.shape[-2], err.shape[-1], tile, overlap, device=err.device))
    return prof


__all__ = ["Profile", "boundary_distance", "clip_positions", "spatial_profile", "squared_error_map",
           "tile_distance_map", "tile_edges"]
