"""Bootstrap confidence interval of FVD, resampling whole videos.

Clips of one video are correlated, so the resampling unit is the video (a group of clip rows):
``rng = numpy.random.default_rng(seed)``; videos are numbered in order of first appearance in
``groups``; each of ``n_resamples`` resamples draws ``V`` video numbers with replacement
(``rng.integers(0, V, size=V)``), takes all clip rows of the drawn videos (repeats included) from
*both* feature sets (paired: reconstruction j is compared with its own real clip j) and computes
:func:`~vidtok_bench.metrics.fvd.frechet_distance`. The interval is the percentile interval
``numpy.percentile(values, [100(1-c)/2, 100(1+c)/2])`` (linear interpolation) of those values;
the point estimate is the FVD of all clips. FVD is biased by the clip count, and so is each
resample: report the interval with the clip and video counts.
"""
from __future__ import annotations

from typing import Any, Callable, Hashable, Sequence

import numpy as np

from .fvd import _as_2d, frechet_distance


def video_rows(groups: Sequence[Hashable]) -> list[np.ndarray]:
    """Row indices of each video, videos in order of first appearance in ``groups``."""
    rows: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        rows.setdefault(g.item() if isinstance(g, np.generic) else g, []).append(i)
    return [np.asarray(r, dtype=np.int64) for r in rows.values()]


def fvd_bootstrap(real_feats: Any, fake_feats: Any, groups: Sequence[Hashable], n_resamples: int = 1000,
                  seed: int = 0, confidence: float = 0.95,
                  distance: Callable[[Any, Any], float] = frechet_distance) -> dict[str, Any]:
    """FVD of all clips plus a paired, video-level bootstrap percentile interval (module doc).

    ``distance`` computes the value and every resample (default :func:`frechet_distance`; the FVD
    plugin passes the faster, equal :func:`~vidtok_bench.metrics.fvd.frechet_distance_eig`).

    ``real_feats``/``fake_feats``: (N,D) features of the same N clips in the same order; ``groups``:
    N video ids. Returns ``value``, ``ci_low``, ``ci_high``, ``confidence``, ``n_resamples``,
    ``seed``, ``clips``, ``videos`` and ``resamples`` (the per-resample FVDs, float64 array).
    """
    real, fake = _as_2d(real_feats, "real_feats"), _as_2d(fake_feats, "fake_feats")
    if real.shape != fake.shape:
        raise ValueError(f"paired bootstrap needs real and fake features of one shape, got {real.shape} and {fake.shape}")
    if len(groups) != real.shape[0]:
        raise ValueError(f"{len(groups)} group ids for {real.shape[0]} clips")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if int(n_resamples) < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    videos = video_rows(groups)
    if len(videos) < 2:
        raise ValueError(f"a video-level bootstrap needs at least 2 videos, got {len(videos)}")
    rng = np.random.default_rng(seed)
    values = np.empty(int(n_resamples), dtype=np.float64)
    for r in range(len(values)):
        rows = np.concatenate([videos[v] for v in rng.integers(0, len(videos), size=len(videos))])
        values[r] = distance(real[rows], fake[rows])
    lo, hi = np.percentile(values, [100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2])
    return {"value": distance(real, fake), "ci_low": float(lo), "ci_high": float(hi),
            "confidence": float(confidence), "n_resamples": int(n_resamples), "seed": int(seed),
            "clips": int(real.shape[0]), "videos": len(videos), "resamples": values,
            "method": "paired video-level bootstrap, percentile interval"}


__all__ = ["fvd_bootstrap", "video_rows"]
