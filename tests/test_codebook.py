"""Codebook usage and latent statistics vs numpy; sharded accumulation merges to the one-pass result."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from vidtok_bench.metrics import codebook
from vidtok_bench.metrics.codebook import CodebookUsage, LatentStats


def _np_usage(idx: np.ndarray, k: int, ppt: float) -> dict:
    vals, cnt = np.unique(idx.reshape(-1), return_counts=True)
    p = cnt / cnt.sum()
    h = -np.sum(p * np.log(p))
    return {"used": len(vals), "used_fraction": len(vals) / k, "entropy_nats": h, "entropy_bits": h / np.log(2),
            "perplexity": np.exp(h), "bpp_entropy": h / np.log(2) / ppt, "bpp_nominal": np.log2(k) / ppt,
            "tokens": idx.size}


def _skewed(rng: np.random.Generator, k: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.minimum(rng.zipf(1.3, size=shape) - 1, k - 1) * 7 % k  # heavy-tailed, many entries unused


def _roundtrip(state: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # tensors only


@pytest.mark.parametrize("k, dense_max", [(1000, codebook.DENSE_MAX), (1000, 0), (1 << 20, codebook.DENSE_MAX)])
def test_usage_matches_numpy_and_shards_merge_exactly(k: int, dense_max: int, monkeypatch) -> None:
    monkeypatch.setattr(codebook, "DENSE_MAX", dense_max)  # dense_max=0: the sparse path on a small codebook
    rng = np.random.default_rng(k + dense_max)
    idx = _skewed(rng, k, (6, 3, 5, 8))  # (B, T', H', W')
    one = CodebookUsage(k)
    assert one.dense == (k <= dense_max)
    one.update(torch.from_numpy(idx).to(torch.int32))
    got, want = one.compute(pixels_per_token=4 * 8 * 8), _np_usage(idx, k, 4 * 8 * 8)
    for key, v in want.items():
        assert got[key] == pytest.approx(v, rel=1e-12), key
    assert got["nominal_bits"] == math.log2(k)
    assert np.array_equal(one.counts().numpy(), np.bincount(idx.reshape(-1), minlength=k))

    shards = [CodebookUsage(k) for _ in range(3)]
    for i in range(6):  # strided shards, batches of one
        shards[i % 3].update(torch.from_numpy(idx[i:i + 1]))
    resumed = CodebookUsage(k)
    resumed.load_state_dict(_roundtrip(shards[0].state_dict()))
    merged = resumed.merge(shards[1]).merge(shards[2])
    assert torch.equal(merged.counts(), one.counts())
    assert merged.compute(256) == one.compute(256)  # same integers -> bit-identical figures


def test_usage_edge_cases() -> None:
    u = CodebookUsage(8)
    assert math.isnan(u.compute()["entropy_bits"]) and u.compute()["tokens"] == 0
    u.update(torch.full((10,), 3))
    r = u.compute(pixels_per_token=16)
    assert r["used"] == 1 and r["entropy_bits"] == 0 and r["perplexity"] == 1 and r["bpp_nominal"] == 3 / 16
    u.update(torch.arange(8).repeat(4))  # now uniform apart from entry 3
    assert u.compute()["used_fraction"] == 1.0
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        u.update(torch.tensor([8]))
    with pytest.raises(TypeError):
        u.update(torch.zeros(3))
    with pytest.raises(ValueError):
        u.merge(CodebookUsage(16))
    uniform = CodebookUsage(64)
    uniform.update(torch.arange(64).repeat(5))
    assert uniform.compute()["entropy_bits"] == pytest.approx(6.0, rel=1e-12)
    assert uniform.compute()["perplexity"] == pytest.approx(64.0, rel=1e-12)


def test_latent_stats_match_numpy_and_merge() -> None:
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(7, 4, 3, 5, 6)) * np.array([1, 3, 0.1, 10]).reshape(1, 4, 1, 1, 1) + 2).astype(np.float32)
    one = LatentStats(4)
    one.update(torch.from_numpy(x))
    r = one.compute()
    per_ch = x.astype(np.float64).transpose(1, 0, 2, 3, 4).reshape(4, -1)
    assert r["n"] == per_ch.shape[1]
    np.testing.assert_allclose(r["mean"].numpy(), per_ch.mean(1), rtol=1e-12)
    np.testing.assert_allclose(r["std"].numpy(), per_ch.std(1), rtol=1e-9)
    shards = [LatentStats(4) for _ in range(3)]
    for i in range(7):
        shards[i % 3].update(torch.from_numpy(x[i:i + 1]))
    merged = LatentStats(4)
    merged.load_state_dict(_roundtrip(shards[0].state_dict()))
    merged.merge(shards[1]).merge(shards[2])
    assert int(merged.n) == int(one.n)
    np.testing.assert_allclose(merged.sum.numpy(), one.sum.numpy(), rtol=1e-13)
    np.testing.assert_allclose(merged.sum_sq.numpy(), one.sum_sq.numpy(), rtol=1e-13)
    with pytest.raises(ValueError):
        one.update(torch.zeros(2, 3, 4))


def test_latent_stats_merge_bit_for_bit_in_any_grouping() -> None:
    """Batches accumulated one after another, or in four parts in another order then merged: the sums are exact
    until read, so n, sums and std are bit-identical (plain float64 sums differ in the last bits here)."""
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(9, 3, 4, 4, 4)) * 10.0 ** rng.integers(-3, 4, size=(9, 3, 1, 1, 1))).float()
    one = LatentStats(3)
    for i in range(9):
        one.update(x[i:i + 1])
    parts = [LatentStats(3) for _ in range(4)]
    for i in range(9):
        parts[(i * 7) % 4].update(x[i:i + 1])
    merged = parts[0].merge(parts[1]).merge(parts[2]).merge(parts[3])
    for key in ("n", "sum", "sum_sq"):
        assert torch.equal(getattr(merged, key), getattr(one, key)), key
    assert torch.equal(merged.compute()["std"], one.compute()["std"])


def test_latent_stats_do_not_depend_on_the_batch_size() -> None:
    """Three clips in one batch or one at a time: the same statistics (each clip's sums are added exactly; a
    batch summed as one would cancel the middle clip's 1e-16 against the others' +-1)."""
    x = torch.tensor([1.0, 1e-16, -1.0], dtype=torch.float64).view(3, 1, 1)
    batched, single = LatentStats(1), LatentStats(1)
    batched.update(x)
    for i in range(3):
        single.update(x[i:i + 1])
    assert single.sum.item() == 1e-16
    for key in ("n", "sum", "sum_sq"):
        assert torch.equal(getattr(batched, key), getattr(single, key)), key
