"""Every clip names its source frames; a video's last clip carries the checksum (XXH3-128 chain) of those frames
(as decoded: the planes of YUV 4:2:0 sources, RGB for the others)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok_bench import create_dataset
from vidtok_bench.data import Preprocess
from vidtok_bench.errors import VideoError
from vidtok_bench.video.clips import FrameDigest, SampledFrame, cut_clips, frame_digest
from vidtok_bench.video.decode import decode_clips
from vidtok_bench.video.yuv import probe_yuv, rgb_to_yuv420


def rgb(i: int) -> np.ndarray:
    """A distinct tiny uint8 frame per number."""
    return np.random.default_rng(i).integers(0, 256, (2, 4, 3), dtype=np.uint8)


def stream(indices: list[int]) -> list[SampledFrame]:
    return [SampledFrame(i, torch.zeros(3, 2, 2), rgb(i)) for i in indices]


def sha(frames: list[np.ndarray]) -> str:
    """The checksum written independently: one-shot XXH3-128 over the frames' own XXH3-128 digests, in order."""
    return xxhash.xxh3_128(b"".join(xxhash.xxh3_128(f.tobytes()).digest() for f in frames)).hexdigest()


def raw_frames(path) -> list[np.ndarray]:
    """A raw YUV file's frames as the bytes it stores (Y, U, V planes back to back): what its checksum covers."""
    data, fb = path.read_bytes(), probe_yuv(path).frame_bytes
    return [np.frombuffer(data[i : i + fb], np.uint8) for i in range(0, len(data), fb)]


def test_bare_tensors_get_positions_and_tail_repeats():
    clips = list(cut_clips([torch.zeros(3, 2, 2)] * 10, 4, video_id="v"))
    assert [c.source_indices for c in clips] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 9, 9)]
    assert all(c.video_checksum is None for c in clips)  # nothing to hash without RGB


def test_checksum_on_last_clip_only_chains_the_frames_digests():
    src = [0, 3, 6, 9, 12, 15, 18]  # e.g. every 3rd source frame
    clips = list(cut_clips(stream(src), 3, video_id="v", source_size=(4, 2)))
    assert [c.source_indices for c in clips] == [(0, 3, 6), (9, 12, 15), (18, 18, 18)]
    assert [c.video_checksum for c in clips[:-1]] == [None, None]
    assert clips[-1].video_checksum == sha([rgb(i) for i in src])
    assert clips[-1].source_size == (4, 2)


def test_checksum_excludes_dropped_tail_and_gaps_and_hashes_overlap_once():
    src = list(range(10))
    (a, b) = list(cut_clips(stream(src), 4, tail="drop", video_id="v"))  # frames 8, 9 are dropped
    assert b.video_checksum == sha([rgb(i) for i in range(8)])
    clips = list(cut_clips(stream(src), 2, clip_stride=4, video_id="v"))  # windows 0-1, 4-5, 8-9
    assert [c.source_indices for c in clips] == [(0, 1), (4, 5), (8, 9)]
    assert clips[-1].video_checksum == sha([rgb(i) for i in (0, 1, 4, 5, 8, 9)])
    clips = list(cut_clips(stream(src), 4, clip_stride=2, video_id="v"))  # overlapping
    assert clips[-1].video_checksum == sha([rgb(i) for i in src])


def test_repeated_source_frame_is_hashed_at_each_position():
    src = [0, 0, 1, 1, 2]
    (c,) = list(cut_clips(stream(src), None, video_id="v"))
    assert c.source_indices == (0, 0, 1, 1, 2) and c.video_checksum == sha([rgb(i) for i in src])


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 40), length=st.integers(1, 9), stride=st.one_of(st.none(), st.integers(1, 12)),
       tail=st.sampled_from(["repeat", "drop"]))
def test_indices_and_checksum_match_reference(n, length, stride, tail):
    src = [5 + 2 * k for k in range(n)]  # source numbers differ from positions
    try:
        clips = list(cut_clips(stream(src), length, stride, tail, video_id="v"))
    except VideoError:
        assert tail == "drop" and n < length
        return
    held: dict[int, int] = {}
    for c in clips:
        real = [src[c.start + k] for k in range(c.valid)]
        assert c.source_indices == tuple(real + [real[-1]] * (length - c.valid))
        held.update({c.start + k: src[c.start + k] for k in range(c.valid)})
    assert clips[-1].video_checksum == sha([rgb(held[p]) for p in sorted(held)])


def test_frame_digest_checks_input_and_snapshots():
    d = FrameDigest()
    assert d.hexdigest() is None
    with pytest.raises(TypeError, match="uint8"):
        d.update(np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ValueError, match="16 bytes"):
        d.add(b"short")
    d.update(rgb(1))
    first = d.snapshot()
    d.update(torch.from_numpy(rgb(2)))
    assert first() == sha([rgb(1)]) and d.hexdigest() == sha([rgb(1), rgb(2)])
    d.add(frame_digest(rgb(3)))  # a digest computed elsewhere (the decoder's workers) chains the same way
    assert d.hexdigest() == sha([rgb(1), rgb(2), rgb(3)]) and d.frames == 3
    d.close()


def test_frames_hashed_by_the_decoder_workers_give_the_same_checksum():
    """Digests computed where frames are converted (SampledFrame.digest) equal hashing the RGB on arrival."""
    src = [0, 2, 4, 6, 8]
    by_rgb = list(cut_clips(stream(src), 2, video_id="v"))
    by_digest = list(cut_clips([SampledFrame(i, torch.zeros(3, 2, 2), digest=frame_digest(rgb(i))) for i in src], 2,
                               video_id="v"))
    assert by_digest[-1].video_checksum == by_rgb[-1].video_checksum == sha([rgb(i) for i in src])


def test_synthetic_clips_name_the_sampled_frames():
    ds = create_dataset("synthetic", num_videos=1, num_frames=20, height=24, width=32, size=16, clip_len=4, fps=10)
    video = ds.videos()[0]
    clips = list(ds.clips(video))
    assert [c.source_indices for c in clips] == [(0, 3, 6, 9), (12, 15, 18, 18)]  # 30 -> 10 fps: every 3rd
    src = ds.source(video)
    assert clips[-1].video_checksum == sha([src.to_rgb(i) for i in range(0, 20, 3)])
    assert clips[0].source_size == (32, 24)


@pytest.fixture
def tiny_yuv(tmp_path):
    """A raw 8 x 4 YUV file of 6 frames at 2 fps with distinct content per frame."""
    p = tmp_path / "tiny_8x4_2.yuv"
    p.write_bytes(b"".join(rgb_to_yuv420(np.full((4, 8, 3), 30 * i, np.uint8)) for i in range(6)))
    return p


def test_raw_yuv_timestamps_sampling_repeats_indices(tiny_yuv):
    clips = list(decode_clips(tiny_yuv, Preprocess(fps=4, sampling="timestamps", size=None, crop="none", clip_len=5)))
    assert [c.source_indices for c in clips] == [(0, 0, 1, 1, 2), (2, 3, 3, 4, 4), (5, 5, 5, 5, 5)]
    frames = raw_frames(tiny_yuv)
    assert clips[-1].video_checksum == sha([frames[i] for i in (0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5)])


def test_frame_range_numbers_from_the_source(tiny_yuv):
    pp = Preprocess(fps=None, size=None, crop="none", clip_len=2)
    clips = list(decode_clips(tiny_yuv, pp, frame_range=(2, 5)))
    assert [c.source_indices for c in clips] == [(2, 3), (4, 4)]
    frames = raw_frames(tiny_yuv)
    assert clips[-1].video_checksum == sha(frames[2:5])
    with pytest.raises(VideoError, match=r"tiny_8x4_2.yuv: the video has 6 frames; the range asks for frames 4-7"):
        list(decode_clips(tiny_yuv, pp, frame_range=(4, 8)))
    with pytest.raises(VideoError, match="the range asks for frames from 9"):
        list(decode_clips(tiny_yuv, pp, frame_range=(9, None)))


def test_max_frames_limits_the_checksum(tiny_yuv):
    (c,) = list(decode_clips(tiny_yuv, Preprocess(fps=None, size=None, crop="none", clip_len=None, max_frames=3)))
    frames = raw_frames(tiny_yuv)
    assert c.source_indices == (0, 1, 2) and c.video_checksum == sha(frames[:3])
