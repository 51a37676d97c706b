"""Paired bootstrap confidence intervals over videos (numpy, vectorised, fixed seed).

Videos, not frames or clips, are the resampling unit: frames of one video are strongly
correlated, so resampling them would give intervals that are far too narrow.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BenchError


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int


def bootstrap_mean_ci(diffs: np.ndarray, weights: np.ndarray | None = None, *, n_resamples: int = 10_000,
                      confidence: float = 0.95, seed: int = 0, chunk_elems: int = 4_000_000) -> Interval:
    """Percentile bootstrap CI of the (weighted) mean of paired per-video differences.

    ``weights`` (e.g. frames per video) make the estimate the frame-weighted mean, matching
    a run's headline number (mean over all frames); resampling is still over videos.
    """
    d = np.asarray(diffs, dtype=np.float64).ravel()
    w = np.ones_like(d) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if d.shape != w.shape:
        raise BenchError(f"bootstrap: {d.size} differences but {w.size} weights")
    if d.size == 0:
        raise BenchError("bootstrap: no paired videos to resample")
    if not np.all(np.isfinite(d)) or not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise BenchError("bootstrap: differences must be finite and weights positive")
    if not 0 < confidence < 1 or n_resamples < 1:
        raise BenchError(f"bootstrap: bad confidence {confidence} or resample count {n_resamples}")
    n = d.size
    estimate = float(np.sum(w * d) / np.sum(w))
    rng = np.random.default_rng(seed)
    wd = w * d
    stats = np.empty(n_resamples)
    rows = max(1, chunk_elems // n)
    for start in range(0, n_resamples, rows):
        stop = min(n_resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        stats[start:stop] = wd[idx].sum(axis=1) / w[idx].sum(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return Interval(estimate, float(low), float(high), n)
