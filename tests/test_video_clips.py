"""Cutting sampled frames into clips: windows, tails, padding, failures."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok_bench.errors import VideoError
from vidtok_bench.video.clips import cut_clips, plan_windows


def frames(n: int) -> list[torch.Tensor]:
    """Frame i is constant i/1000 so a clip's content tells which frames it holds."""
    return [torch.full((3, 2, 2), i / 1000.0) for i in range(n)]


def frame_ids(clip) -> list[int]:
    return [round(float((x + 1) / 2) * 1000) for x in clip.frames[0, :, 0, 0]]


def reference_windows(n: int, length: int, stride: int, tail: str) -> list[tuple[int, int]]:
    """Independent: every start 0, stride, ...; full ones, then the first partial one if it adds frames."""
    out, end_covered = [], 0
    for s in range(0, n, stride):
        if s + length <= n:
            out.append((s, length))
            end_covered = s + length
        else:
            if end_covered < n and tail == "repeat":
                out.append((s, n - s))
            break
    return out


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 80), length=st.integers(1, 20), stride=st.one_of(st.none(), st.integers(1, 25)),
       tail=st.sampled_from(["repeat", "drop"]))
def test_windows_match_reference(n, length, stride, tail):
    ref = reference_windows(n, length, stride or length, tail)
    assert [(w.start, w.valid) for w in plan_windows(n, length, stride, tail)] == ref
    if not ref:
        with pytest.raises(VideoError, match="fewer than one clip"):
            list(cut_clips(frames(n), length, stride, tail, video_id="v"))
        return
    clips = list(cut_clips(frames(n), length, stride, tail, video_id="v"))
    assert [(c.start, c.valid) for c in clips] == ref
    for i, c in enumerate(clips):
        assert c.index == i and c.frames.shape == (3, length, 2, 2) and c.frames.dtype == torch.float32
        assert c.tail_padded == length - c.valid
        ids = frame_ids(c)
        assert ids == list(range(c.start, c.start + c.valid)) + [c.start + c.valid - 1] * (length - c.valid)


def test_non_overlapping_default_with_repeat_tail():
    clips = list(cut_clips(frames(40), 17, video_id="v"))
    assert [(c.start, c.valid) for c in clips] == [(0, 17), (17, 17), (34, 6)]
    assert clips[-1].tail_padded == 11


def test_whole_video_clip():
    (c,) = list(cut_clips(frames(23), None, video_id="v"))
    assert c.frames.shape[1] == 23 and c.valid == 23 and frame_ids(c) == list(range(23))


def test_values_mapped_to_minus_one_one():
    (c,) = list(cut_clips([torch.zeros(3, 2, 2), torch.ones(3, 2, 2)], None, video_id="v"))
    assert float(c.frames[:, 0].max()) == -1.0 and float(c.frames[:, 1].min()) == 1.0


def test_short_video_drop_is_an_error_repeat_pads():
    with pytest.raises(VideoError, match=r"a.mp4: video has 5 sampled frames, fewer than one clip of 17 \(tail=drop\)"):
        list(cut_clips(frames(5), 17, tail="drop", video_id="v", source="a.mp4"))
    (c,) = list(cut_clips(frames(5), 17, tail="repeat", video_id="v"))
    assert c.valid == 5 and c.tail_padded == 12


@pytest.mark.parametrize("length", [17, None])
def test_zero_frames_is_an_error(length):
    with pytest.raises(VideoError, match="b.mkv: video has no frames"):
        list(cut_clips([], length, video_id="v", source="b.mkv"))
