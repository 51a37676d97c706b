"""Fréchet distance vs independent formulas; the FVD plugin's preprocessing, accumulation,
reference-feature cache and resume state (with a stand-in feature network: the real I3D is
checked against its reference in test_i3d.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from vidtok_bench.errors import ConfigError
from vidtok_bench.metrics import frechet_distance
from vidtok_bench.metrics.fvd import FVD, preprocess
from vidtok_bench.registry import METRICS
from vidtok_bench.weights import manager

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "i3d" / "i3d_reference.npz"


def _psd_sqrt(m: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _fd_eigen(a: np.ndarray, b: np.ndarray) -> float:
    """Independent: Tr((S_a S_b)^1/2) = Tr((S_a^1/2 S_b S_a^1/2)^1/2), all via symmetric eigh."""
    mu = a.mean(0) - b.mean(0)
    sa = (a - a.mean(0)).T @ (a - a.mean(0)) / (len(a) - 1)
    sb = (b - b.mean(0)).T @ (b - b.mean(0)) / (len(b) - 1)
    ra = _psd_sqrt(sa)
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.trace(_psd_sqrt(ra @ sb @ ra)))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 40), m=st.integers(3, 40), d=st.integers(1, 12), seed=st.integers(0, 10_000),
       shift=st.floats(-3, 3))
def test_matches_eigendecomposition_formula(n: int, m: int, d: int, seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    b = rng.normal(size=(m, d)) * rng.uniform(0.1, 3, size=d) + shift
    assert frechet_distance(a, b) == pytest.approx(_fd_eigen(a, b), rel=1e-6, abs=1e-6)


def test_closed_form_for_one_dimension() -> None:
    # 1-D: (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2 with unbiased sigmas
    a, b = np.array([[0.0], [1.0], [2.0], [5.0]]), np.array([[3.0], [-1.0], [4.0]])
    want = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(a, b) == pytest.approx(want, rel=1e-9)


def test_identity_translation_and_torch_inputs() -> None:
    rng = np.random.default_rng(1)
    a = rng.normal(size=(50, 8))
    assert abs(frechet_distance(a, a)) < 1e-6
    c = rng.normal(size=8)
    assert frechet_distance(torch.from_numpy(a), a + c) == pytest.approx(float(c @ c), rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], a)


@pytest.mark.skipif(not FIXTURE.is_file(), reason="I3D reference fixture not present")
def test_black_white_reference_features_give_151_39() -> None:
    z = np.load(FIXTURE)
    black, white = np.repeat(z["logits_black30"][None], 8, 0), np.repeat(z["logits_white30"][None], 8, 0)
    assert frechet_distance(black, white) == pytest.approx(151.39, abs=0.05)


# ----------------------------------------------------------------- preprocessing
def test_preprocess_exact_2x_downscale_is_block_mean() -> None:
    x = torch.rand(1, 3, 9, 448, 448) * 2 - 1
    want = F.avg_pool2d(x[0].transpose(0, 1), 2).transpose(0, 1)[None]  # bilinear at exactly 1/2 = 2x2 mean
    assert torch.allclose(preprocess(x), want, atol=1e-6)


def test_preprocess_centre_crop_and_frames() -> None:
    x = torch.arange(300.0).expand(1, 3, 12, 224, 300).contiguous()  # value = column index
    out = preprocess(x, max_frames=10)
    assert out.shape == (1, 3, 10, 224, 224)
    assert out[0, 0, 0, 0, 0] == 38 and out[0, 0, 0, 0, -1] == 261  # (300-224)//2 = 38
    short = preprocess(torch.zeros(2, 3, 4, 100, 120))
    assert short.shape == (2, 3, 9, 224, 268)[:4] + (224,)  # T padded to 9, short side 100 -> 224


# ----------------------------------------------------------------- the plugin
class StubNet:
    """Stands in for I3D: 400-d features from per-channel moments; counts clips it sees."""

    def __init__(self):
        self.clips = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (3, x.shape[2], 224, 224) and x.shape[2] >= 9
        self.clips += x.shape[0]
        m = x.mean((2, 3, 4))
        base = torch.cat([m, x.std((2, 3, 4)), x.amax((2, 3, 4))], 1)  # (B, 9)
        return torch.cat([base * (k + 1) for k in range(45)], 1)[:, :400]


def _metric(**kw) -> FVD:
    m = METRICS.get("fvd")(device="cpu", **kw)
    m._net = StubNet()
    return m


def _clips(n: int, seed: int, offset: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 3, 9, 32, 40, generator=g) * 1.5 - 1 + offset).clamp(-1, 1)


def test_plugin_accumulates_over_batches_and_warns(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path))
    m = _metric()
    real, fake = _clips(6, 0), _clips(6, 1, 0.2)
    for i in range(0, 6, 2):  # three batches
        m.update(real[i:i + 2], fake[i:i + 2], [f"v{i}#0", f"v{i + 1}#0"])
    out = m.compute()
    one = _metric()
    want = _fd_eigen(one.features(real).astype(np.float64), one.features(fake).astype(np.float64))
    assert out["value"] == pytest.approx(want, rel=1e-5, abs=1e-4) and out["clips"] == 6
    assert "fewer than the 400" in out["warning"]
    spec = m.spec()
    assert spec["weights_sha256"] == manager.artifact("i3d").sha256 and "224" in spec["preprocessing"]["crop"]
    assert _metric().compute()["value"] is None


def test_reference_features_are_cached_per_key(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path))
    real, fake_a, fake_b = _clips(4, 0), _clips(4, 1), _clips(4, 2)
    ids = [f"vid{i}#0" for i in range(4)]
    first = _metric()
    first.set_reference_key("folder:/data|fps30|256|clip17")
    first.update(real, fake_a, ids)
    assert first._net.clips == 8 and first.reference_cache_hits == 0
    second = _metric()  # another tokenizer on the same data: only its own clips go through the network
    second.set_reference_key("folder:/data|fps30|256|clip17")
    second.update(real, fake_b, ids)
    assert second._net.clips == 4 and second.reference_cache_hits == 4
    assert np.array_equal(np.stack(second._real), np.stack(first._real))
    other = _metric(max_frames=9)  # different preprocessing -> different cache entry
    other.set_reference_key("folder:/data|fps30|256|clip17")
    other.update(real, fake_b, ids)
    assert other._net.clips == 8
    nokey = _metric()
    nokey.update(real, fake_b, ids)
    assert nokey._net.clips == 8


def test_state_dict_round_trip_resumes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path))
    real, fake = _clips(5, 3), _clips(5, 4, -0.3)
    ids = [f"v{i}#0" for i in range(5)]
    whole = _metric()
    whole.update(real, fake, ids)
    part = _metric()
    part.update(real[:3], fake[:3], ids[:3])
    state = part.state_dict()
    torch.save(state, tmp_path / "s.pt")
    resumed = _metric()
    resumed.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert resumed.state_videos() == {"v0", "v1", "v2"}  # what a resumed run may take as scored
    resumed.update(real[3:], fake[3:], ids[3:])
    got, want = resumed.state_dict(), whole.state_dict()
    assert got["clip_ids"] == want["clip_ids"] == ids
    assert torch.equal(got["real"], want["real"]) and torch.equal(got["fake"], want["fake"])
    with pytest.raises(ValueError, match="do not match"):
        resumed.load_state_dict({**got, "clip_ids": ids[:2]})


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="224"):
        FVD(size=256)
    with pytest.raises(ConfigError, match="max_frames"):
        FVD(max_frames=0)
