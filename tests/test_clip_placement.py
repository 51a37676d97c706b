"""uint8 clips whose frames the converting threads write into place (ClipPlacement): the same clips as
frames copied in by cut_clips, and no second copy of a placed frame."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok_bench.data import Preprocess
from vidtok_bench.video.clips import ClipBuffer, ClipPlacement, SampledFrame, cut_clips, frame_digest
from vidtok_bench.video.decode import decode_clips


def _frames(n: int, seed: int = 0, shape: tuple[int, int] = (5, 7)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(n)]


def _placed(rgbs: list[np.ndarray], placement: ClipPlacement) -> list[SampledFrame]:
    out = []
    for pos, rgb in enumerate(rgbs):
        place = placement(pos)
        view = place[0].put(place[1], rgb) if place is not None else None
        if view is None:
            out.append(SampledFrame(pos, torch.from_numpy(rgb.copy()), digest=frame_digest(rgb)))
        else:
            out.append(SampledFrame(pos, view, digest=frame_digest(rgb), clip=place[0].tensor))
    return out


def _plain(rgbs: list[np.ndarray]) -> list[SampledFrame]:
    return [SampledFrame(i, torch.from_numpy(r.copy()), digest=frame_digest(r)) for i, r in enumerate(rgbs)]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 20), clip_len=st.integers(1, 6), gap=st.integers(0, 3), tail=st.sampled_from(["repeat", "drop"]))
def test_placed_frames_make_the_same_clips_as_copied_ones(n, clip_len, gap, tail):
    rgbs = _frames(n, seed=n * 31 + clip_len)
    stride = clip_len + gap
    try:
        want = list(cut_clips(_plain(rgbs), clip_len, stride, tail))
    except Exception as exc:  # e.g. fewer frames than one clip with tail=drop: the same error either way
        with pytest.raises(type(exc), match=str(exc)[:30]):
            list(cut_clips(_placed(rgbs, ClipPlacement(clip_len, stride)), clip_len, stride, tail))
        return
    got = list(cut_clips(_placed(rgbs, ClipPlacement(clip_len, stride)), clip_len, stride, tail))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert torch.equal(a.frames, b.frames)
        assert (a.index, a.start, a.valid, a.source_indices) == (b.index, b.start, b.valid, b.source_indices)
    assert got[-1].video_checksum == want[-1].video_checksum is not None


def test_a_placed_clip_is_the_buffer_the_threads_wrote_not_a_copy():
    rgbs = _frames(7)
    frames = _placed(rgbs, ClipPlacement(3))
    clips = list(cut_clips(frames, 3))
    assert [c.valid for c in clips] == [3, 3, 1]
    for clip, first in zip(clips, (frames[0], frames[3], frames[6])):
        assert clip.frames.data_ptr() == first.clip.data_ptr()  # (3, T, H, W) view of the placed (T, H, W, 3) tensor
    assert torch.equal(clips[-1].frames[:, 2], torch.from_numpy(rgbs[6]).permute(2, 0, 1))  # tail repeated in place


def test_a_frame_of_another_size_is_not_placed():
    buf = ClipBuffer(2)
    assert buf.put(0, _frames(1)[0]) is not None
    assert buf.put(1, _frames(1, shape=(4, 7))[0]) is None  # the caller keeps its own frame


def test_placement_windows_and_gaps():
    p = ClipPlacement(2, 3)
    got = [(None if s is None else s[1]) for s in (p(i) for i in range(7))]
    assert got == [0, 1, None, 0, 1, None, 0]
    a, b = p(3)[0], p(4)[0]
    assert a is b and p(6)[0] is not a  # one buffer per window
    with pytest.raises(ValueError, match="non-overlapping"):
        ClipPlacement(4, 2)


@pytest.mark.parametrize("pp", [
    Preprocess(size=64, clip_len=4, clip_stride=6, max_frames=15),  # gaps between windows
    Preprocess(size=64, sampling="timestamps", fps=50, clip_len=5, max_frames=13),  # 25 fps source: repeated frames
])
@pytest.mark.parametrize("workers", [1, 3])
def test_uint8_clips_of_a_real_video_hold_its_frames(shared_videos, pp, workers):
    """decode_clips' uint8 clips (placed by its threads) against the float pipeline's sampling and frames."""
    import av

    path = shared_videos / "tears_of_steel_640x360.mp4"
    with av.open(str(path)) as c:
        src = [f.to_ndarray(format="rgb24") for _, f in zip(range(40), c.decode(video=0))]
    ref = list(decode_clips(path, pp, workers=workers))
    got = list(decode_clips(path, pp, workers=workers, clip_frames="uint8"))
    assert len(got) == len(ref) > 1
    for a, b in zip(got, ref):
        assert (a.start, a.valid, a.source_indices) == (b.start, b.valid, b.source_indices)
        for t, i in enumerate(a.source_indices):
            assert torch.equal(a.frames[:, t], torch.from_numpy(src[i]).permute(2, 0, 1)), (a.index, t, i)
    assert got[-1].video_checksum == ref[-1].video_checksum is not None
    if pp.sampling == "timestamps":
        assert any(len(set(c.source_indices[: c.valid])) < c.valid for c in got)  # repeats really occurred


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA to pin memory (runs on a GPU host)")
def test_pinned_clips_on_cuda_hosts_are_placed_pinned_and_equal(shared_videos):
    pp = Preprocess(size=64, clip_len=4, max_frames=10)
    path = shared_videos / "tears_of_steel_640x360.mp4"
    pinned = list(decode_clips(path, pp, workers=3, clip_frames="pinned"))
    plain = list(decode_clips(path, pp, workers=3, clip_frames="uint8"))
    assert len(pinned) == len(plain) == 3
    for a, b in zip(pinned, plain):
        assert a.frames.is_pinned() and torch.equal(a.frames, b.frames)


@pytest.mark.parametrize("placed", [False, True])
def test_a_frame_size_change_within_a_uint8_clip_is_a_one_line_video_error(placed):
    """uint8 clips stack source-size frames: a size change inside a window names the file and both sizes
    (it used to surface as torch's 'expanded size' RuntimeError); at a window boundary each clip keeps its size."""
    from vidtok_bench.errors import VideoError

    rgbs = _frames(3, shape=(5, 7)) + _frames(3, seed=1, shape=(6, 8))
    make = (lambda r, n: _placed(r, ClipPlacement(n))) if placed else (lambda r, n: _plain(r))
    with pytest.raises(VideoError, match=r"v\.mkv: the frame size changes within the video \(7x5 -> 8x6\)") as e:
        list(cut_clips(make(rgbs, 4), 4, source="v.mkv"))
    assert "\n" not in str(e.value)
    clips = list(cut_clips(make(rgbs, 3), 3, source="v.mkv"))  # the change falls between two clips
    assert [tuple(c.frames.shape) for c in clips] == [(3, 3, 5, 7), (3, 3, 6, 8)]
