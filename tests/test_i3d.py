"""I3D port vs the TF-Hub reference logits in ../shared/fixtures/i3d, and the black/white FVD."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from _weights_fixture import seeded_cache_dir, weights_cache  # noqa: F401  (fixture)

from vidtok_bench.errors import InputShapeError
from vidtok_bench.metrics import I3D, frechet_distance
from vidtok_bench.metrics.i3d import _same_pad

FIXTURE = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "i3d" / "i3d_reference.npz"
TOL = 1e-3


@pytest.fixture(scope="module")
def ref():
    if not FIXTURE.is_file():
        pytest.skip(f"I3D reference fixture not found at {FIXTURE}")
    return np.load(FIXTURE)


@pytest.fixture(scope="module")
def i3d(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # built once per module: loading + BN folding takes seconds
        mp.setenv("VIDTOK_BENCH_CACHE", str(seeded_cache_dir(tmp_path_factory)))
        return I3D(device="cpu", fetch=False)


def _clip(ref, i: int) -> torch.Tensor:
    return torch.from_numpy(ref[f"clip{i}"]).permute(3, 0, 1, 2)[None].float() / 127.5 - 1


def test_same_padding_matches_tensorflow_rule() -> None:
    # TF: out = ceil(n/s); total = max((out-1)*s + k - n, 0); the extra pixel goes after
    assert _same_pad((16, 224, 224), (7, 7, 7), (2, 2, 2)) == [2, 3, 2, 3, 2, 3]
    assert _same_pad((8, 112, 112), (1, 3, 3), (1, 2, 2)) == [0, 1, 0, 1, 0, 0]
    assert _same_pad((4, 14, 14), (2, 2, 2), (2, 2, 2)) == [0, 0, 0, 0, 0, 0]
    assert _same_pad((5,), (2,), (2,)) == [0, 1]


@pytest.mark.parametrize("i", [0, 4])  # a 16-frame and the 17-frame natural clip
def test_logits_match_reference(ref, i3d, i: int) -> None:
    got = i3d(_clip(ref, i))[0].numpy()
    want = ref[f"logits{i}"]
    assert np.abs(got - want).max() <= TOL, ref["names"][i]
    assert got.argmax() == want.argmax()


def test_batched_black_white_reference_and_fvd(ref, i3d) -> None:
    video = torch.stack([torch.full((3, 30, 224, 224), -1.0), torch.full((3, 30, 224, 224), 1.0)])
    logits = i3d(video).numpy()
    assert logits.shape == (2, 400) and logits.dtype == np.float32
    assert np.abs(logits[0] - ref["logits_black30"]).max() <= TOL
    assert np.abs(logits[1] - ref["logits_white30"]).max() <= TOL
    # N identical clips per set: zero covariance, so FVD = |mu_black - mu_white|^2 (TF1 reference 151.39)
    n = 4
    fvd = frechet_distance(np.repeat(logits[:1], n, 0), np.repeat(logits[1:], n, 0))
    assert fvd == pytest.approx(151.39, abs=0.05)


def test_input_checks(i3d) -> None:
    with pytest.raises(InputShapeError, match="224"):
        i3d(torch.zeros(1, 3, 16, 112, 112))
    with pytest.raises(InputShapeError, match="at least 9"):
        i3d(torch.zeros(1, 3, 8, 224, 224))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu(ref, weights_cache) -> None:  # noqa: F811
    torch.backends.cudnn.allow_tf32 = True  # the default; I3D must switch it off itself
    got = I3D(device="cuda", fetch=False)(_clip(ref, 0).cuda())
    assert got.device.type == "cuda"
    assert np.abs(got[0].cpu().numpy() - ref["logits0"]).max() <= TOL
