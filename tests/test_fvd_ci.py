"""FVD bootstrap interval vs an independent video-level bootstrap loop written here."""
from __future__ import annotations

import numpy as np
import pytest
from test_fvd import _fd_eigen  # the independent eigendecomposition Fréchet distance

from vidtok_bench.metrics.fvd import frechet_distance
from vidtok_bench.metrics.fvd_ci import fvd_bootstrap, video_rows


def _feats(n_videos: int, clips: int, d: int = 4, seed: int = 0, shift: float = 0.5):
    """Clip features with a per-video component (clips of one video are correlated)."""
    rng = np.random.default_rng(seed)
    video = np.repeat(rng.normal(size=(n_videos, d)), clips, axis=0)
    real = video + 0.5 * rng.normal(size=(n_videos * clips, d))
    fake = real + shift + 0.3 * rng.normal(size=real.shape)  # paired: fake row j reconstructs real row j
    groups = [f"video{v}" for v in range(n_videos) for _ in range(clips)]
    return real, fake, groups


def _reference_bootstrap(real, fake, groups, n, seed, conf):
    ids = list(dict.fromkeys(groups))  # videos in first-appearance order
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n):
        pick = rng.integers(0, len(ids), size=len(ids))
        rows = [j for v in pick for j, g in enumerate(groups) if g == ids[v]]
        vals.append(_fd_eigen(real[rows], fake[rows]))
    return np.percentile(vals, [50 * (1 - conf), 50 * (1 + conf)]), np.array(vals)


def test_matches_independent_bootstrap_loop() -> None:
    real, fake, groups = _feats(12, 3)
    rng = np.random.default_rng(5)
    order = rng.permutation(len(groups))  # clips of one video need not be contiguous
    real, fake, groups = real[order], fake[order], [groups[i] for i in order]
    got = fvd_bootstrap(real, fake, groups, n_resamples=60, seed=7, confidence=0.9)
    (lo, hi), vals = _reference_bootstrap(real, fake, groups, 60, 7, 0.9)
    np.testing.assert_allclose(got["resamples"], vals, rtol=1e-6, atol=1e-8)
    assert got["ci_low"] == pytest.approx(lo, rel=1e-6) and got["ci_high"] == pytest.approx(hi, rel=1e-6)
    assert got["value"] == pytest.approx(_fd_eigen(real, fake), rel=1e-6)
    assert (got["clips"], got["videos"], got["n_resamples"], got["confidence"]) == (36, 12, 60, 0.9)


def test_deterministic_contains_point_and_narrows_with_more_videos() -> None:
    real, fake, groups = _feats(15, 2, seed=1)
    a = fvd_bootstrap(real, fake, groups, n_resamples=200, seed=3)
    b = fvd_bootstrap(real, fake, groups, n_resamples=200, seed=3)
    c = fvd_bootstrap(real, fake, groups, n_resamples=200, seed=4)
    assert np.array_equal(a["resamples"], b["resamples"]) and a["ci_low"] == b["ci_low"]
    assert not np.array_equal(a["resamples"], c["resamples"])
    assert a["ci_low"] < a["value"] < a["ci_high"]
    big = fvd_bootstrap(*_feats(120, 2, seed=1), n_resamples=200, seed=3)
    assert big["ci_low"] < big["value"] < big["ci_high"]
    assert (big["ci_high"] - big["ci_low"]) < 0.6 * (a["ci_high"] - a["ci_low"])  # ~1/sqrt(8) expected


def test_resamples_whole_videos_and_pairs_rows() -> None:
    real, fake, groups = _feats(6, 4, seed=2)
    same = fvd_bootstrap(real, real, groups, n_resamples=20, seed=0)  # paired identical sets: every resample ~0
    assert np.abs(same["resamples"]).max() < 1e-6
    # one video of 4 identical clips drawn 6 times: a resample made of whole videos only
    assert [r.tolist() for r in video_rows(["b", "a", "b", np.int64(3), "a"])] == [[0, 2], [1, 4], [3]]
    one = fvd_bootstrap(real, fake, groups, n_resamples=1, seed=11)
    pick = np.random.default_rng(11).integers(0, 6, size=6)
    rows = np.concatenate([np.arange(v * 4, v * 4 + 4) for v in pick])
    assert one["resamples"][0] == pytest.approx(frechet_distance(real[rows], fake[rows]), rel=1e-12)
    with pytest.raises(ValueError, match="2 videos"):
        fvd_bootstrap(real, fake, ["v"] * len(groups))
    with pytest.raises(ValueError, match="one shape"):
        fvd_bootstrap(real, fake[:-1], groups)
    with pytest.raises(ValueError, match="group ids"):
        fvd_bootstrap(real, fake, groups[:-1])
