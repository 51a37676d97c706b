"""FVD variants and its bootstrap interval through real runs (a stand-in for the I3D network, as in
test_fvd.py): the interval against an independent loop over the run's stored features, the clips a
variant keeps, and compare/gate refusing runs of different variants."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from test_fvd import _fd_eigen
from test_fvd_ci import _reference_bootstrap

from vidtok_bench.cli import main
from vidtok_bench.errors import ConfigError
from vidtok_bench.metrics.fvd import FVD, frechet_distance, frechet_distance_eig, parse_variant
from vidtok_bench.results import load_result

SEEN: list[int] = []  # frames per clip the stand-in network was given


class StubI3D:
    """400-d features from per-channel moments of each frame (stands in for the I3D network)."""

    def __init__(self, device="cpu"):
        pass

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        SEEN.extend([x.shape[2]] * x.shape[0])
        m = torch.cat([x.mean((3, 4)), x.std((3, 4))], 1).flatten(1)  # (B, 6 * T)
        reps = -(-400 // m.shape[1])
        return torch.cat([m * (k + 1) ** 0.5 for k in range(reps)], 1)[:, :400]


@pytest.fixture
def stub_i3d(monkeypatch, tmp_path):
    import vidtok_bench.metrics.i3d as i3d

    monkeypatch.setattr(i3d, "I3D", StubI3D)
    monkeypatch.setenv("VIDTOK_BENCH_CACHE", str(tmp_path / "cache"))
    SEEN.clear()


def _run(out: Path, *extra: str) -> int:
    return main(["run", "tokenizer=trilinear_488", "dataset=synthetic", "dataset.num_videos=4", "dataset.num_frames=34",
                 "dataset.size=32", "dataset.height=32", "dataset.width=32", "progress=false", "device=cpu",
                 "metrics=[psnr,fvd]", f"output_dir={out}", *extra])


def test_bootstrap_interval_matches_an_independent_loop_over_the_runs_features(tmp_path, stub_i3d):
    assert _run(tmp_path / "a", "protocol.metric_options.fvd.n_resamples=50", "protocol.metric_options.fvd.seed=3") == 0
    res = load_result(tmp_path / "a")
    fvd = res.metrics["fvd"]
    state = torch.load(tmp_path / "a" / "state" / "fvd.pt", weights_only=True)
    real, fake = state["real"].double().numpy(), state["fake"].double().numpy()
    groups = [c.rpartition("#")[0] for c in state["clip_ids"]]
    (lo, hi), _ = _reference_bootstrap(real, fake, groups, 50, 3, 0.95)
    boot = fvd.details["bootstrap"]
    assert boot["ci_low"] == pytest.approx(lo, rel=1e-6) and boot["ci_high"] == pytest.approx(hi, rel=1e-6)
    assert (boot["n_resamples"], boot["seed"], boot["clips"], boot["videos"]) == (50, 3, 8, 4)
    assert fvd.clips == 8 and fvd.details["videos"] == 4 and "fewer than the 400" in fvd.warning
    assert fvd.value == pytest.approx(frechet_distance(real, fake), rel=1e-9)
    assert fvd.spec["variant"] == "whole" and set(SEEN) == {17}


def test_variants_keep_the_clips_they_name(tmp_path, stub_i3d):
    assert _run(tmp_path / "v", "protocol.metric_options.fvd.variant=clips16_per_video_1") == 0
    fvd = load_result(tmp_path / "v").metrics["fvd"]
    assert set(SEEN) == {16} and len(SEEN) == 2 * 4  # real + fake of the first clip of each video, 16 frames each
    assert fvd.clips == 4 and fvd.details["left_out"] == {"beyond the first 1 clips of its video": 4}
    assert fvd.spec["variant"] == "clips16_per_video_1" and "first 16 frames" in fvd.spec["clips"]
    SEEN.clear()
    # clips shorter than 16 frames (tail frames not scored) are left out of clips16
    assert _run(tmp_path / "s", "protocol.metric_options.fvd.variant=clips16", "protocol=tokenbench",
                "dataset.num_frames=40", "dataset.clip_len=17") == 0
    fvd = load_result(tmp_path / "s").metrics["fvd"]
    assert fvd.clips == 8 and fvd.details["left_out"] == {"shorter than 16 frames": 4} and set(SEEN) == {16}


def test_compare_and_gate_refuse_runs_of_different_variants(tmp_path, stub_i3d, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(a) == 0 and _run(b, "protocol.metric_options.fvd.variant=clips16") == 0
    ra, rb = load_result(a), load_result(b)
    assert ra.value("psnr") == rb.value("psnr") and ra.fingerprint.data != rb.fingerprint.data
    capsys.readouterr()
    assert main(["gate", "--baseline", str(a), "--current", str(b)]) == 2
    err = capsys.readouterr().err  # the refusal names the difference, not only two hashes
    assert "fingerprint.data differs" in err and 'metrics.fvd.spec.variant ("whole" vs "clips16")' in err
    # the same frames (equal manifests): compare goes ahead, FVD of different variants gets no delta and PSNR
    # (same definition) still does
    assert main(["compare", str(a), str(b)]) == 0
    cap = capsys.readouterr()
    assert "data fingerprints differ only in metrics" in cap.err and "the frames manifests are equal" in cap.err
    assert "metric 'fvd' is defined differently in A and B" in cap.err and "variant" in cap.err
    rows = [line.split()[0] for line in cap.out.splitlines()[3:] if line.strip()]
    assert "psnr" in rows and "fvd" not in rows


def test_variant_names_are_checked():
    assert parse_variant("whole") == (None, None) and parse_variant("clips16") == (16, None)
    assert parse_variant("clips16_per_video_5") == (16, 5)
    for bad in ("clips17", "clips16_per_video_0", "clips16_per_video_", "all"):
        with pytest.raises(ConfigError, match="clips16_per_video_N"):
            FVD(variant=bad)
    with pytest.raises(ConfigError, match="contradicts"):
        FVD(variant="clips16", max_frames=15)
    with pytest.raises(ConfigError, match="n_resamples"):
        FVD(n_resamples=-1)
    assert FVD(variant="clips16", max_frames=300).max_frames == 16  # a protocol's cap above 16 leaves 16


@settings(max_examples=30, deadline=None)
@given(n=st.integers(3, 30), m=st.integers(3, 30), d=st.integers(1, 40), seed=st.integers(0, 10_000))
def test_eigen_form_equals_the_frechet_distance(n, m, d, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d))
    b = rng.normal(size=(m, d)) * rng.uniform(0.5, 2) + rng.normal(size=d)
    assert frechet_distance_eig(a, b) == pytest.approx(_fd_eigen(a, b), rel=1e-7, abs=1e-7)


def test_left_out_clips_do_not_keep_their_source_frames(stub_i3d):
    """A variant that leaves clips out lets go of their noted source frame numbers at once: held until the run
    ends, they grew with the video's length (all but N clips of every video under clips16_per_video_N)."""
    m = FVD(variant="clips16_per_video_2")
    m.set_reference_key("k")
    x = torch.zeros(1, 3, 17, 32, 32)
    for k in range(50):
        m.note_sources({f"v#{k}": tuple(range(17 * k, 17 * k + 17))})
        m.update(x, x, [f"v#{k}"])
    short = torch.zeros(1, 3, 9, 32, 32)  # shorter than the variant's 16 frames
    m.note_sources({"w#0": tuple(range(9))})
    m.update(short, short, ["w#0"])
    assert len(m._ids) == 2 and len(m._left_out) == 49
    assert m._sources == {}


def test_video_variant_is_one_sample_per_video_of_its_first_max_frames_scored_frames(tmp_path, stub_i3d):
    """``video`` (TokenBench's metrics_cli: each video's first 300 frames as one I3D sample): the features of each
    whole video cut at max_frames, whatever its clips were, against FVD of those videos given as single clips."""
    g = torch.Generator().manual_seed(0)
    videos = {f"v{k}": (torch.rand(1, 3, n, 40, 56, generator=g) * 2 - 1) for k, n in enumerate((13, 7, 20))}
    fakes = {k: (v * 0.8).clamp(-1, 1) for k, v in videos.items()}
    m = FVD(variant="video", max_frames=12, n_resamples=0, cache_reference=False)
    for name, v in videos.items():  # clips of 5 frames (the last shorter), one update each
        for c, s in enumerate(range(0, v.shape[2], 5)):
            m.update(v[:, :, s:s + 5], fakes[name][:, :, s:s + 5], [f"{name}#{c}"])
        m.state_dict()  # the runner saves the state after each video: its sample is made then
    ref = FVD(variant="whole", max_frames=12, n_resamples=0, cache_reference=False)
    for name, v in videos.items():
        ref.update(v, fakes[name], [f"{name}#0"])
    got, want = m.compute(), ref.compute()
    assert got["clips"] == want["clips"] == 3 and got["details"]["videos"] == 3
    assert got["value"] == pytest.approx(want["value"], rel=1e-5)
    assert sorted(SEEN[-6:]) == sorted(SEEN[:6])  # 12, 9 (7 padded), 12 frames per sample, real and fake
    assert "as one sample" in m.spec()["clips"] and m.spec()["variant"] == "video"


def test_video_variant_drops_a_failed_video_and_keeps_nothing_pending_in_its_state(stub_i3d):
    m = FVD(variant="video", n_resamples=0, cache_reference=False)
    x = torch.zeros(1, 3, 9, 32, 32)
    m.update(x, x, ["a#0"])
    m.state_dict()
    m.update(x, x, ["b#0"])
    m.discard(["b#0"])  # b failed part-way
    state = m.state_dict()
    assert state["clip_ids"] == ["a#0"] and m.state_videos() == {"a"} and not m._pending


def test_tokenbench_run_with_the_video_variant(tmp_path, stub_i3d):
    """Through the runner: 17-frame windows for the model, one FVD sample per video of its scored frames."""
    assert _run(tmp_path / "t", "protocol=tokenbench", "protocol.metric_options.fvd.variant=video",
                "dataset.num_frames=40", "dataset.size=null") == 0
    fvd = load_result(tmp_path / "t").metrics["fvd"]
    assert fvd.clips == 4 and fvd.details["videos"] == 4 and fvd.spec["variant"] == "video"
    assert set(SEEN) == {40}  # 3 windows of 17 (the last with 6 frames scored) joined: 40 frames per sample
