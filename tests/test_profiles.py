"""Error profiles vs direct numpy computations on inputs whose answer is known."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from vidtok_bench.metrics.exactsum import ExactSums
from vidtok_bench.metrics.profiles import (
    Profile, boundary_distance, clip_positions, spatial_profile, squared_error_map, tile_distance_map, tile_edges,
)
from vidtok_bench.metrics.psnr import psnr


def _checker(h: int, w: int) -> torch.Tensor:
    """+1/-1 checkerboard: an error pattern of exactly known MSE (mean square 1)."""
    return (torch.arange(h).view(-1, 1) + torch.arange(w).view(1, -1)).remainder(2).mul(2).sub(1).double()


def _video(b: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(b, 3, t, h, w, generator=g, dtype=torch.float64) - 0.5)  # in [-0.5, 0.5]: no clamping


def test_first_frame_penalty_has_the_exact_expected_size() -> None:
    b, t, clip = 2, 12, 4  # three causal clips of 4 frames per video
    real = _video(b, t, 8, 10)
    pos = clip_positions(t, clip)
    assert pos.tolist() == [0, 1, 2, 3] * 3
    amp = torch.tensor([0.2 if p == 0 else 0.05 for p in pos], dtype=torch.float64).view(1, 1, t, 1, 1)  # first frame of each clip is noisier
    recon = real + amp * _checker(8, 10)
    prof = Profile()
    for i in range(b):  # clip by clip, as a runner would
        for c in range(0, t, clip):
            prof.update(psnr(real[i:i + 1, :, c:c + clip], recon[i:i + 1, :, c:c + clip]), pos[c:c + clip])
    p0, p1 = -10 * np.log10((0.2 / 2) ** 2 + 1e-8), -10 * np.log10((0.05 / 2) ** 2 + 1e-8)  # [0,1] units
    np.testing.assert_allclose(prof.means().numpy(), [p0, p1, p1, p1], rtol=1e-10)
    assert prof.counts.tolist() == [6, 6, 6, 6]
    assert prof.penalty() == pytest.approx(p1 - p0, rel=1e-10) and prof.penalty() > 10
    assert prof.worst() == 0
    lower = Profile(higher_is_better=False)  # the same errors as MSE: lower is better, same sign of "worse"
    lower.update(((recon - real) / 2).pow(2).mean((1, 3, 4)), pos)
    assert lower.penalty() == pytest.approx(0.1 ** 2 - 0.025 ** 2, rel=1e-10) and lower.worst() == 0


def test_profile_matches_numpy_grouping_and_merges() -> None:
    rng = np.random.default_rng(0)
    vals = rng.normal(30, 3, size=(5, 17))
    keys = np.tile(np.arange(17) % 5, (5, 1))
    keys[2] = rng.integers(0, 9, size=17)  # per-row keys work too
    one = Profile()
    one.update(torch.from_numpy(vals), torch.from_numpy(keys))
    want_means = [vals[keys == k].mean() if (keys == k).any() else np.nan for k in range(keys.max() + 1)]
    np.testing.assert_allclose(one.means().numpy(), want_means, rtol=1e-12)
    rest = vals[keys >= 1].mean()
    assert one.penalty() == pytest.approx(rest - vals[keys == 0].mean(), rel=1e-12)
    assert one.worst() == int(np.nanargmin(want_means))
    shards = [Profile(), Profile()]
    for i in range(5):
        shards[i % 2].update(torch.from_numpy(vals[i]), torch.from_numpy(keys[i]))
    buf = io.BytesIO()
    torch.save(shards[0].state_dict(), buf)
    buf.seek(0)
    merged = Profile()
    merged.load_state_dict(torch.load(buf, weights_only=True))
    merged.merge(shards[1])
    assert torch.equal(merged.counts, one.counts)
    np.testing.assert_allclose(merged.sums.numpy(), one.sums.numpy(), rtol=1e-14)
    with pytest.raises(TypeError):
        one.update(torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError):
        one.update(torch.zeros(3), torch.tensor([0, -1, 2]))
    empty = Profile()
    assert np.isnan(empty.penalty()) and empty.summary()["worst"] is None


def test_exact_sums_are_the_same_in_any_order_and_grouping() -> None:
    """Terms of wildly different sizes (float64 addition loses most of them) added in three orders and groupings:
    every element's sum is bit-identical and equals math.fsum of its terms (the correctly rounded exact sum)."""
    rng = np.random.default_rng(3)
    terms = rng.normal(size=(40, 6)) * 10.0 ** rng.integers(-12, 12, size=(40, 6))
    plain = [terms.sum(0), terms[::-1].sum(0)]
    assert any((plain[0] != plain[1]))  # plain float64 sums do depend on the order
    one = ExactSums()
    for row in terms:
        one.add(torch.from_numpy(row))
    parts = [ExactSums(), ExactSums(), ExactSums()]
    for i in rng.permutation(len(terms)):
        parts[i % 3].add(torch.from_numpy(terms[i]))
    merged = ExactSums.from_tensor(parts[2].to_tensor())  # a saved state
    merged.merge(parts[0])
    merged.merge(parts[1])
    want = torch.tensor([math.fsum(terms[:, j]) for j in range(6)], dtype=torch.float64)
    assert torch.equal(one.values(), want) and torch.equal(merged.values(), want)
    assert merged.pooled(range(6)) == math.fsum(terms.ravel())
    legacy = ExactSums.from_tensor(torch.tensor([1.5, 0.0, -2.0], dtype=torch.float64))  # plain sums of an older state
    assert legacy.values().tolist() == [1.5, 0.0, -2.0]


def test_profile_sums_do_not_depend_on_how_clips_were_split() -> None:
    """Clips profiled by one accumulator, or by shards in another order then merged (a state saved between):
    sums, means and penalty are bit-identical; an older state with plain float64 sums still loads."""
    rng = np.random.default_rng(4)
    clips = [torch.from_numpy(rng.normal(30, 8, size=(1, 17))) for _ in range(9)]
    pos = clip_positions(17, 17)
    one = Profile()
    for c in clips:
        one.update(c, pos)
    shards = [Profile(), Profile()]
    for i in (8, 3, 5, 0, 1, 7, 2, 6, 4):
        shards[i % 2].update(clips[i], pos)
    merged = Profile()
    buf = io.BytesIO()
    torch.save(shards[1].state_dict(), buf)
    buf.seek(0)
    merged.load_state_dict(torch.load(buf, weights_only=True))
    merged.merge(shards[0])
    assert torch.equal(merged.sums, one.sums) and torch.equal(merged.means(), one.means())
    assert merged.penalty() == one.penalty()
    old = Profile()
    old.load_state_dict({"sums": one.sums, "counts": one.counts, "higher_is_better": torch.tensor(True)})
    assert torch.equal(old.means(), one.means())


def _np_boundary_distance(n: int, edges: list[int]) -> np.ndarray:
    return np.array([min(min(abs(i - e), abs(i - e + 1)) for e in edges) for i in range(n)])


def test_boundary_distance_and_boundary_penalty() -> None:
    t, edges = 40, [16, 30]  # chunk boundaries between frames 15|16 and 29|30
    dist = boundary_distance(t, edges + [0, 40])  # the signal's own ends are ignored
    assert np.array_equal(dist.numpy(), _np_boundary_distance(t, edges))
    assert dist[[15, 16, 29, 30]].tolist() == [0, 0, 0, 0] and dist[0] == 15 and dist[23] == 6
    real = _video(1, t, 6, 6, seed=2)
    amp = torch.tensor([0.16 if k == 0 else 0.04 for k in dist], dtype=torch.float64).view(1, 1, t, 1, 1)  # frames next to a boundary are worse
    recon = real + amp * _checker(6, 6)
    prof = Profile()
    prof.update(psnr(real, recon), dist)
    want = -10 * np.log10(0.02 ** 2 + 1e-8) + 10 * np.log10(0.08 ** 2 + 1e-8)
    assert prof.penalty() == pytest.approx(want, rel=1e-10)
    with pytest.raises(ValueError):
        boundary_distance(10, [0, 10])


def test_tile_edges_and_distance_map() -> None:
    assert tile_edges(256, 128) == [128]
    assert tile_edges(256, 128, 32) == [96, 128, 192, 224]  # starts 0, 96, 192; ends 128, 224 (320 > 256)
    assert tile_edges(100, 128) == []
    with pytest.raises(ValueError):
        tile_edges(64, 16, 16)
    h, w = 20, 36
    d = tile_distance_map(h, w, (8, 12), (2, 0))
    rows, cols = _np_boundary_distance(h, tile_edges(h, 8, 2)), _np_boundary_distance(w, tile_edges(w, 12, 0))
    assert np.array_equal(d.numpy(), np.minimum(rows[:, None], cols[None, :]))
    one_axis = tile_distance_map(10, 40, (16, 16))  # no row boundary: only column distances count
    assert np.array_equal(one_axis[3].numpy(), _np_boundary_distance(40, [16, 32]))


def test_spatial_profile_pools_error_by_seam_distance() -> None:
    real = _video(2, 3, 32, 48, seed=4)
    seam = torch.zeros(32, 48, dtype=torch.float64)
    seam[:, 23:25] = 0.3  # an error band on both sides of the column boundary at 24
    recon = real + seam * _checker(32, 48)
    tile = (64, 24)  # one tile row, two tile columns
    prof = spatial_profile(real[:1], recon[:1], tile=tile)
    prof = spatial_profile(real[1:], recon[1:], tile=tile, profile=prof)  # accumulate a second batch
    err = ((recon - real) / 2).pow(2).mean(1).numpy()  # (B,T,H,W) in [0,1] units
    np.testing.assert_allclose(squared_error_map(real, recon).numpy(), err, rtol=1e-12)
    dist = np.broadcast_to(tile_distance_map(32, 48, tile).numpy(), err.shape)
    want_means = [err[dist == k].mean() for k in range(dist.max() + 1)]
    np.testing.assert_allclose(prof.means().numpy(), want_means, rtol=1e-12, atol=1e-18)
    assert prof.penalty() == pytest.approx(0.15 ** 2, rel=1e-12)  # all error at distance 0, none elsewhere
    assert prof.worst() == 0 and not prof.higher_is_better


@pytest.mark.parametrize("slab", [1, 3 * 32 * 48 * 2, 1 << 40])  # one frame per step, two, the whole clip
def test_spatial_profile_in_slabs_equals_the_whole_map_and_holds_no_whole_clip(monkeypatch, slab) -> None:
    """On CPUs the error map is made a few frames at a time (a whole 17-frame 720p clip's float64 map and its keys
    were ~1 GB): the same means whatever the step, and no step converts more frames than it allows."""
    import importlib

    P = importlib.import_module("vidtok_bench.metrics.psnr")  # the package exports a function of that name
    S = importlib.import_module("vidtok_bench.metrics.profiles")
    real = _video(1, 7, 32, 48, seed=5)
    recon = real + 0.1 * _video(1, 7, 32, 48, seed=6)
    err = ((recon - real) / 2).pow(2).mean(1).numpy()
    dist = np.broadcast_to(tile_distance_map(32, 48, (16, 24)).numpy(), err.shape)
    want = [err[dist == k].mean() for k in range(dist.max() + 1)]
    steps: list[int] = []
    real_map = S.squared_error_map

    def counted(a, b):
        steps.append(a.shape[2])
        return real_map(a, b)

    monkeypatch.setattr(P, "CPU_SLAB_ELEMS", slab)
    monkeypatch.setattr(S, "squared_error_map", counted)
    prof = spatial_profile(real, recon, tile=(16, 24))
    np.testing.assert_allclose(prof.means().numpy(), want, rtol=1e-12)
    assert int(prof.counts.sum()) == 7 * 32 * 48 and sum(steps) == 7
    assert max(steps) == min(7, max(1, slab // (3 * 32 * 48)))


def test_profile_metric_does_not_depend_on_the_batch_size(monkeypatch) -> None:
    """Clips of one video in one batch or one per call: the same profile sums (clip by clip; a batch's values
    summed together would lose the middle clip's 1e-16 between the others' +-1)."""
    from vidtok_bench.metrics import profiles

    values = {1.0: 1.0, 2.0: 1e-16, 3.0: -1.0}  # each clip's "PSNR", keyed by its pixel value
    monkeypatch.setattr(profiles, "frame_psnr", lambda real, fake: real[:, 0, :, 0, 0].double().apply_(values.get))
    clips = torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1, 1).expand(3, 3, 1, 2, 2)
    ids = [f"v#{i}" for i in range(3)]
    batched, single = profiles.ProfileMetric(lpips=False), profiles.ProfileMetric(lpips=False)
    batched.update(clips, clips, ids)
    for i in range(3):
        single.update(clips[i:i + 1], clips[i:i + 1], ids[i:i + 1])
    got, want = batched.total()["profiles"], single.total()["profiles"]
    assert want["psnr_by_position"].sums.tolist() == [1e-16]
    assert torch.equal(got["psnr_by_position"].sums, want["psnr_by_position"].sums)
