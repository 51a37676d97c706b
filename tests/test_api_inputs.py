"""The Python API refuses what would give a plausible, wrong number: one check of metric inputs
(metrics.base.check_pair) behind psnr, ssim, LPIPS and DISTS, typed plugin options, devices, tokenizer inputs."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from _weights_fixture import seeded_cache_with_dists
from vidtok_bench import create_tokenizer
from vidtok_bench.errors import ConfigError, InputShapeError
from vidtok_bench.metrics import psnr, ssim

torch.manual_seed(0)
X = torch.rand(2, 3, 4, 32, 32) * 2 - 1
Y = (X + 0.05 * torch.randn_like(X)).clamp(-1, 1)
U8 = ((X + 1) * 127.5).round().to(torch.uint8)

BAD = {
    "fewer_real_frames": (X[:, :, :1], Y, "of equal shape"),
    "fewer_real_clips": (X[:1], Y, "of equal shape"),
    "frames_last": (X.transpose(1, 2), Y.transpose(1, 2), "of equal shape, got (2, 4, 3, 32, 32)"),
    "uint8": (U8, U8, "floating-point pixels"),
    "0_255_float": (U8.float(), U8.float(), "(0..255 pixels? x / 127.5 - 1)"),
    "nan_real": (X.masked_fill(X > 0.99, float("nan")), Y, "real spans [nan"),
    "nan_fake": (X, Y.masked_fill(Y > 0.99, float("nan")), "fake has non-finite values"),
    "empty": (X[:, :, :0], Y[:, :, :0], "empty input"),
    "numpy": (X.numpy(), Y, "two torch tensors"),
    "rank_3": (X[0, 0], Y[0, 0], "of equal shape"),
}


@pytest.mark.parametrize("fn", [psnr, ssim], ids=["psnr", "ssim"])
@pytest.mark.parametrize("case", list(BAD))
def test_psnr_and_ssim_refuse_inputs_that_would_give_a_wrong_number(fn, case):
    real, fake, words = BAD[case]
    with pytest.raises(InputShapeError) as exc:
        fn(real, fake)
    assert words in str(exc.value) and "\n" not in str(exc.value)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=5, max_size=5), st.lists(st.integers(1, 3), min_size=5, max_size=5))
def test_any_two_different_shapes_are_refused_and_equal_ones_scored(a, b):
    """Shapes differing anywhere are refused (never broadcast); equal (B,3,T,H,W) shapes give (B,T) values."""
    a[1] = b[1] = 3
    a[3], a[4], b[3], b[4] = a[3] + 10, a[4] + 10, b[3] + 10, b[4] + 10  # SSIM's 11x11 window
    real = torch.rand(a) * 2 - 1
    if a == b:
        assert psnr(real, real.flip(-1)).shape == ssim(real, real.flip(-1)).shape == (a[0], a[2])
    else:
        for fn in (psnr, ssim):
            with pytest.raises(InputShapeError, match="of equal shape"):
                fn(real, torch.rand(b) * 2 - 1)


def test_rounding_past_the_range_and_an_overshooting_reconstruction_are_scored():
    """Ground truth within float rounding of [-1,1], and an unclamped reconstruction: metrics are defined on them."""
    assert torch.isfinite(psnr(X * 1.0005, Y)).all() and torch.isfinite(ssim(X, Y * 1.5)).all()


@pytest.fixture(scope="module")
def networks(tmp_path_factory):
    from vidtok_bench.metrics import DISTS, LPIPS

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDTOK_BENCH_CACHE", str(seeded_cache_with_dists(tmp_path_factory)))
        return {"LPIPS": LPIPS("alex"), "DISTS": DISTS()}


@pytest.mark.parametrize("name", ["LPIPS", "DISTS"])
def test_lpips_and_dists_refuse_uint8_and_0_255_pixels(networks, name):
    a, b = X[:, :, 0], Y[:, :, 0]
    ok = networks[name](a, b)
    assert ok.shape == (2,) and torch.isfinite(ok).all()
    for real, fake, words in ((U8[:, :, 0], U8[:, :, 0], "floating-point"), ((a + 1) * 127.5, b, "0..255"),
                              (a[:0], b[:0], "empty input")):
        with pytest.raises(InputShapeError, match=words):
            networks[name](real, fake)


def test_string_booleans_and_numbers_are_refused_naming_the_option():
    """From Python bool("false") is True: options annotated bool/int/float take only those types."""
    for kw, words in ((dict(sample_posterior="false"), "sample_posterior='false' must be true or false"),
                      (dict(channels_last=1), "channels_last=1 must be true or false or null")):
        with pytest.raises(ConfigError, match=words):
            create_tokenizer("vidtok_kl_causal_488_4chn", **kw)
    with pytest.raises(ConfigError, match="t='four' must be an integer"):
        create_tokenizer("trilinear_488", t="four")
    with pytest.raises(ConfigError, match="t=0 must be >= 1"):
        create_tokenizer("trilinear_488", t=0)
    assert create_tokenizer("trilinear_488", t=2).compression == (2, 8, 8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_refused_when_built():
    from vidtok_bench.metrics.psnr import PSNRMetric

    for build in (lambda: create_tokenizer("identity", device="cuda"), lambda: PSNRMetric(device="cuda:0")):
        with pytest.raises(ConfigError, match="CUDA is not available on this machine"):
            build()
    with pytest.raises(ConfigError, match="device='gpu' is not a valid device"):
        create_tokenizer("identity", device="gpu")


def test_tokenizers_refuse_uint8_videos_numpy_arrays_and_empty_batches():
    tok = create_tokenizer("trilinear_488")
    with pytest.raises(InputShapeError, match="expected a torch tensor"):
        tok.encode(X[:1, :, :1].expand(1, 3, 5, 32, 32).numpy())
    with pytest.raises(InputShapeError, match="floating-point pixels"):
        tok.reconstruct(U8[:1, :, :1].expand(1, 3, 5, 32, 32))
    with pytest.raises(InputShapeError, match="empty batch"):
        tok.reconstruct(X[:0, :, :1].expand(0, 3, 5, 32, 32))


@pytest.mark.parametrize("name", ["identity", "trilinear_488"])
def test_tokenizers_refuse_0_255_and_nan_pixels_but_take_rounding_past_the_range(name):
    tok = create_tokenizer(name)
    video = X[:1, :, :1].expand(1, 3, 5, 32, 32)
    for bad, words in (((video + 1) * 127.5, r"spans \[[0-9.]+, 255\] \(0..255 pixels\? x / 127.5 - 1\)"),
                       (video.masked_fill(video > 0.9, float("nan")), "spans"), (video * 1.2, r"spans \[-1.2")):
        with pytest.raises(InputShapeError, match=f"{tok.name} takes pixels in \\[-1,1\\]; the video {words}"):
            tok.encode(bad)
    assert tok.reconstruct(video * 1.0005).shape == video.shape  # float rounding of a conversion
    tok.check_values = False  # as the runner's model stage sets it for its own preprocessed clips
    assert tok.reconstruct((video + 1) * 127.5).shape == video.shape


def test_fvd_update_refuses_real_and_fake_of_different_shapes():
    from vidtok_bench.metrics.fvd import FVD

    m = FVD(n_resamples=0, cache_reference=False)
    with pytest.raises(InputShapeError, match="of equal shape"):
        m.update(X[:1, :, :1].expand(1, 3, 9, 32, 32), X[:1, :, :1, :16, :16].expand(1, 3, 5, 16, 16), ["a#0"])


def test_to_frame_takes_one_path_as_a_string():
    from pathlib import Path

    from vidtok_bench.results import to_frame

    board = str(Path(__file__).resolve().parents[1] / "results" / "leaderboard")
    assert len(to_frame(board)) == len(to_frame([board])) == 10


def test_to_frame_numbers_are_float_and_metric_facts_come_along():
    """A number no result has (FLOPs of codecs, a metric nobody scored) is a float NaN column, not object;
    each metric's declared facts and the fingerprints that say which rows compare come with the frame."""
    from pathlib import Path

    from vidtok_bench.results import to_frame

    df = to_frame(str(Path(__file__).resolve().parents[1] / "results" / "leaderboard"))
    assert df["throughput.encode_flops"].dtype == "float64" and df["throughput.encode_flops"].isna().all()
    numeric = [c for c in df.columns if c.startswith("throughput.") and c != "throughput.note"] + ["psnr", "bits_per_pixel"]
    assert all(df[c].dtype.kind in "fi" for c in numeric)
    assert df.attrs["metrics"]["psnr"].unit == "dB" and df.attrs["metrics"]["lpips"].higher_is_better is False
    assert df["fingerprint.data"].nunique() == 1 and {"family", "date", "status"} <= set(df.columns)


def test_a_local_diffusers_folder_that_is_not_there_is_named():
    from vidtok_bench.errors import CheckpointError

    pytest.importorskip("diffusers")
    with pytest.raises(CheckpointError, match="tokenizer.pretrained=/nonexistent/vae: no such folder"):
        create_tokenizer("wan", pretrained="/nonexistent/vae").encode(X[:1, :, :1].expand(1, 3, 5, 32, 32))
