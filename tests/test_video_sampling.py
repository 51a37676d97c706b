"""fps sampling: index arithmetic against closed-form references, and real decodes."""
from __future__ import annotations

import math
from fractions import Fraction

import av
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok_bench.data import Preprocess
from vidtok_bench.errors import ConfigError
from vidtok_bench.video.decode import decode_clips, open_video, sample
from vidtok_bench.video.sampling import sample_stride, sample_timestamps, stride_step

rates = st.sampled_from([Fraction(x) for x in (1, 5, 10, 12, 15, 20, 23.976, 24, 25, 29.97, 30, 50, 59.94, 60, 120)])


def nearest_reference(n: int, src: Fraction, fps: Fraction) -> list[int]:
    """Closed form: target k/fps (while before n/src) -> frame ceil(k*src/fps - 1/2) (ties: earlier)."""
    out, k = [], 0
    while Fraction(k) / fps < Fraction(n) / src:
        x = Fraction(k) * src / fps
        out.append(min(n - 1, math.ceil(x - Fraction(1, 2))))
        k += 1
    return out


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 400), src=rates, fps=rates)
def test_stride_keeps_every_step_th_frame(n, src, fps):
    step = stride_step(float(src), float(fps))
    assert step == max(1, round(float(src) / float(fps)))
    kept = list(sample_stride(range(n), step))
    assert kept == list(range(0, n, step))
    assert len(kept) == -(-n // step)  # never duplicates, covers the video


@settings(max_examples=300, deadline=None)
@given(n=st.integers(0, 300), src=rates, fps=rates, t0=st.integers(0, 1000))
def test_timestamps_pick_nearest_frame(n, src, fps, t0):
    start = Fraction(t0, 1000)  # streams need not start at 0
    frames = [(start + Fraction(i) / src, i) for i in range(n)]
    got = list(sample_timestamps(frames, fps, 1 / src))
    assert got == nearest_reference(n, src, fps)


def test_timestamps_with_irregular_times():
    times = [Fraction(x, 100) for x in (0, 3, 4, 10, 30, 31)]
    got = list(sample_timestamps([(t, i) for i, t in enumerate(times)], 10, Fraction(1, 100)))
    # targets 0, .1, .2, .3 ; end = .32
    assert got == [0, 3, 3, 4]


def count_frames(path) -> tuple[int, float]:
    """Frame count and rate from the container header (independent of our decode loop)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.frames, float(s.average_rate)


def sampled(path, **pp) -> int:
    """Frames our sampler keeps from a real decode (no RGB conversion: keeps the test fast)."""
    src = open_video(path)
    return sum(1 for _ in sample(src.frames(), src.fps, Preprocess(**pp), str(path)))


@pytest.mark.parametrize(
    "name,fps,mode",
    [
        ("squirrel_1280x720.mp4", 30, "stride"),  # round(25/30) = 1: every frame
        ("squirrel_1280x720.mp4", 12, "stride"),  # round(25/12) = 2
        ("cockatoo_1280x720.mp4", 30, "stride"),  # 20 fps: every frame
        ("vidtok_example_256x256.mp4", 10, "stride"),  # step 3
        ("smpte_bars_1920x1080.mp4", 30, "stride"),
        ("sintel_854x480.mp4", 30, "timestamps"),  # 24 -> 30: some frames repeat
        ("sintel_854x480.mp4", 8, "timestamps"),
        ("kinetics_arm_wrestling_340x256.mp4", None, "stride"),  # native
    ],
)
def test_real_decode_counts(shared_videos, name, fps, mode):
    path = shared_videos / name
    n, src = count_frames(path)
    if fps is None:
        expected = n
    elif mode == "stride":
        expected = len(range(0, n, max(1, round(src / fps))))
    else:
        expected = len(nearest_reference(n, Fraction(src).limit_denominator(1001), Fraction(fps)))
    assert sampled(path, fps=fps, sampling=mode) == expected


def test_squirrel_at_30_keeps_all_250(shared_videos):
    assert sampled(shared_videos / "squirrel_1280x720.mp4", fps=30) == 250


def test_timestamps_repeat_frames_in_content(shared_videos):
    """24 -> 48 fps: each source frame appears twice, values identical."""
    (clip,) = list(decode_clips(shared_videos / "sintel_854x480.mp4", Preprocess(fps=48, sampling="timestamps", size=32, clip_len=None, max_frames=10)))
    f = clip.frames
    assert f.shape[1] == 10
    for k in range(0, 10, 2):
        assert (f[:, k] == f[:, k + 1]).all()
    assert not (f[:, 0] == f[:, 2]).all()


def test_max_frames_stops_early(shared_videos):
    clips = list(decode_clips(shared_videos / "cockatoo_1280x720.mp4", Preprocess(size=32, clip_len=4, max_frames=7)))
    assert [(c.start, c.valid) for c in clips] == [(0, 4), (4, 3)]


@pytest.mark.parametrize("fps, kept", [(60, 6), (20, 3), (29.97, 3)])
def test_a_frame_cap_in_seconds_keeps_the_larger_of_its_frames_and_seconds(tmp_path, fps, kept):
    """``max_frames: "max(N, Ss)"`` (TokenBench: 10 s, never fewer than 300 frames) at the sampled rate: 0.1 s is 6
    frames at 60 fps (more than 3), 2 at 20 fps and ceil(2.997) = 3 at 29.97 fps (3 either way)."""
    path = tmp_path / f"v_16x16_{fps}.yuv"
    path.write_bytes(bytes(16 * 16 * 3 // 2 * 40))  # 40 black 4:2:0 frames
    pp = Preprocess(fps=None, size=None, crop="none", clip_len=None, max_frames="max(3, 0.1s)")
    (clip,) = list(decode_clips(path, pp))
    assert clip.frames.shape[1] == kept and clip.source_indices == tuple(range(kept))
    assert Preprocess(max_frames=3).frame_limit(60) == 3 and Preprocess().frame_limit(60) is None


@pytest.mark.parametrize("bad", ["max(300, 10)", "min(300, 10s)", "max(0, 10s)", 0, 2.5, True, "300"])
def test_a_bad_frame_cap_is_named(bad):
    with pytest.raises(ConfigError, match=r"dataset\.max_frames=.* must be a positive integer, \"max\(N, Ss\)\""):
        Preprocess(max_frames=bad)
