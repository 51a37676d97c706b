"""Damaged real clips through the folder dataset: a one-line VideoError naming the file, or valid clips.

Property-based: real files from ../shared/videos are truncated, bit-flipped, overwritten and
spliced at arbitrary offsets. Whatever PyAV makes of them, iterating the dataset's clips must
either raise a BenchError whose message is one line naming the file, or give clips of the
configured shape that are finite and in [-1, 1] — never another exception and never a hang
(each video's decoding is bounded by ``decode_timeout_s``, each example by a deadline).
"""
from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import vidtok_bench
from vidtok_bench.data import Preprocess
from vidtok_bench.errors import BenchError, VideoError
from vidtok_bench.video.decode import FrameSource, frames_to_clips

SMALL = ("vidtok_example_256x256.mp4", "tears_of_steel_640x360.mp4", "kinetics_flipping_pancake_426x240.mkv")
SIZE, CLIP_LEN, MAX_FRAMES = 32, 4, 8
#: bilinear antialiased resize of float frames (the VidTok evaluator's, unclamped) can exceed
#: 1.0 by float rounding of its weights; a few ulps, never more
RANGE_SLACK = 1e-6

FUZZ = settings(
    max_examples=25,
    deadline=10_000,  # ms per example; decoding 8 small frames takes well under a second
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples on every run: a failure reproduces
)


@pytest.fixture(scope="module")
def clips_bytes(shared_videos: Path) -> dict[str, bytes]:
    data = {name: (shared_videos / name).read_bytes() for name in SMALL}
    _outcome(shared_videos / SMALL[0], decode_timeout_s=None)  # warm-up: imports and first-call costs
    return data


def _outcome(path: Path, **options) -> str:
    """Iterate the clips of ``path`` as the runner does; assert the contract; say what happened."""
    ds = vidtok_bench.create_dataset(
        "folder", root=str(path), fps=30, size=SIZE, clip_len=CLIP_LEN, max_frames=MAX_FRAMES, workers=2,
        **{"decode_timeout_s": 30.0, **options},
    )
    (video,) = ds.videos()
    try:
        clips = list(ds.clips(video))
    except BenchError as exc:
        msg = str(exc)
        assert "\n" not in msg and "\r" not in msg, f"message is not one line: {msg!r}"
        assert str(path) in msg, f"message does not name the file: {msg!r}"
        if isinstance(exc, VideoError):
            assert exc.path == str(path)
        return "error"
    assert 1 <= len(clips) <= MAX_FRAMES // CLIP_LEN
    for c in clips:
        assert tuple(c.frames.shape) == (3, CLIP_LEN, SIZE, SIZE) and c.frames.dtype.is_floating_point
        assert bool(c.frames.isfinite().all())
        assert float(c.frames.abs().max()) <= 1 + RANGE_SLACK
        assert 1 <= c.valid <= CLIP_LEN
    return "clips"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    d = tmp_path / f"case{time.monotonic_ns()}"
    d.mkdir()
    p = d / f"damaged{Path(name).suffix}"
    p.write_bytes(data)
    return p


names = st.sampled_from(SMALL)
# container headers sit in the first few KiB (mp4 moov at the end: offsets from the end too)
offsets = st.one_of(st.integers(0, 4096), st.integers(0, 10**7), st.integers(-4096, -1))


def _at(data: bytes | bytearray, offset: int) -> int:
    return offset % len(data)


@FUZZ
@given(name=names, offset=offsets)
def test_truncated_clip(tmp_path, clips_bytes, name, offset):
    data = clips_bytes[name]
    _outcome(_write(tmp_path, name, data[: _at(data, offset)]))


@FUZZ
@given(name=names, flips=st.lists(st.tuples(offsets, st.integers(0, 7)), min_size=1, max_size=40))
@example(name="tears_of_steel_640x360.mp4", flips=[(27, 7)])  # ftyp compatible brand -> invalid UTF-8 metadata
def test_bit_flipped_clip(tmp_path, clips_bytes, name, flips):
    data = bytearray(clips_bytes[name])
    for offset, bit in flips:
        data[_at(data, offset)] ^= 1 << bit
    _outcome(_write(tmp_path, name, bytes(data)))


@FUZZ
@given(name=names, writes=st.lists(st.tuples(offsets, st.binary(min_size=1, max_size=16)), min_size=1, max_size=10))
def test_overwritten_bytes(tmp_path, clips_bytes, name, writes):
    data = bytearray(clips_bytes[name])
    for offset, chunk in writes:
        i = _at(data, offset)
        data[i : i + len(chunk)] = chunk
    _outcome(_write(tmp_path, name, bytes(data)))


@FUZZ
@given(head=names, tail=names, cut=offsets, resume=offsets)
def test_spliced_clips(tmp_path, clips_bytes, head, tail, cut, resume):
    a, b = clips_bytes[head], clips_bytes[tail]
    _outcome(_write(tmp_path, head, a[: _at(a, cut)] + b[_at(b, resume) :]))


def test_garbled_metadata_still_decodes(tmp_path, clips_bytes):
    """Invalid UTF-8 in a container tag made PyAV raise UnicodeDecodeError; the frames are fine."""
    data = bytearray(clips_bytes["tears_of_steel_640x360.mp4"])
    data[27] = 0x93  # inside the ftyp box's compatible brands, which FFmpeg exports as a tag
    assert _outcome(_write(tmp_path, "x.mp4", bytes(data))) == "clips"


def test_decode_timeout_fails_the_video_with_the_option_named(shared_videos):
    path = shared_videos / "vidtok_example_256x256.mp4"
    ds = vidtok_bench.create_dataset("folder", root=str(path), size=SIZE, clip_len=CLIP_LEN, decode_timeout_s=1e-9)
    (video,) = ds.videos()
    with pytest.raises(VideoError) as err:
        list(ds.clips(video))
    assert str(err.value) == f"{path}: decoding took longer than 1e-09 s (dataset.decode_timeout_s)"


def test_decode_timeout_counts_decoding_not_the_consumer(shared_videos):
    """Clips stream: the time a consumer spends on each clip (a slow tokenizer) is not decoding."""
    path = shared_videos / "vidtok_example_256x256.mp4"
    ds = vidtok_bench.create_dataset("folder", root=str(path), size=SIZE, clip_len=CLIP_LEN, max_frames=12,
                                     workers=1, decode_timeout_s=1.5)
    (video,) = ds.videos()
    n = 0
    for _ in ds.clips(video):
        time.sleep(0.7)  # 3 clips: 2.1 s held by the consumer, more than the budget
        n += 1
    assert n == 3


def test_decode_timeout_default_and_off(tmp_path):
    assert vidtok_bench.create_dataset("folder", root=str(tmp_path)).decode_timeout_s == 600
    assert vidtok_bench.create_dataset("folder", root=str(tmp_path), decode_timeout_s=None).decode_timeout_s is None
    with pytest.raises(BenchError, match=r"decode_timeout_s=0 must be a positive number"):
        vidtok_bench.create_dataset("folder", root=str(tmp_path), decode_timeout_s=0)


def test_frame_conversion_error_becomes_video_error():
    """A decoded frame PyAV cannot convert (it raises ValueError, not av.FFmpegError) fails only that video."""
    def frames():
        yield Fraction(0), "frame"

    def to_rgb(_frame) -> np.ndarray:
        raise ValueError("Conversion to numpy array with format `rgb24` is not yet supported")

    src = FrameSource("clip.mp4", 64, 64, Fraction(30), frames, to_rgb, 1)
    with pytest.raises(VideoError, match=r"^clip\.mp4: cannot convert a decoded frame to RGB: ValueError: Conversion"):
        list(frames_to_clips(src, Preprocess(size=SIZE, clip_len=CLIP_LEN), "clip.mp4", workers=1))
