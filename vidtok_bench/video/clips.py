"""Cutting a stream of preprocessed frames into clips.

Clips start at 0, stride, 2*stride, ... among the sampled frames (stride = clip_len by
default: non-overlapping). Full windows are emitted as they fill. After the last full
window, one partial window covers the frames not yet covered, if any: with
``tail='repeat'`` it is filled by repeating its last real frame (VidTok's choice, recorded
in ``Clip.valid``); with ``tail='drop'`` it is left out. ``clip_len=None`` makes the whole
video one clip. Only ``max(clip_len, stride)`` small frames are buffered.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from ..data import Clip
from ..errors import VideoError


@dataclass(frozen=True)
class Window:
    """One clip's place among the sampled frames: frames [start, start+valid) are real."""

    start: int
    valid: int
    length: int


def plan_windows(num_frames: int, clip_len: int | None, clip_stride: int | None = None, tail: str = "repeat") -> list[Window]:
    """The windows ``cut_clips`` emits for a video of ``num_frames`` sampled frames (for planning/tests)."""
    if num_frames <= 0:
        return []
    if clip_len is None:
        return [Window(0, num_frames, num_frames)]
    stride = clip_stride or clip_len
    out: list[Window] = []
    s = 0
    while s + clip_len <= num_frames:
        out.append(Window(s, clip_len, clip_len))
        s += stride
    covered = out[-1].start + clip_len if out else 0
    if s < num_frames and covered < num_frames and tail == "repeat":
        out.append(Window(s, num_frames - s, clip_len))
    return out


def _make_clip(frames: list[torch.Tensor], length: int, video_id: str, index: int, start: int, **kw) -> Clip:
    valid = len(frames)
    if valid < length:
        frames = frames + [frames[-1]] * (length - valid)
    x = torch.stack(frames, dim=1)  # (3, T, H, W) in [0, 1]
    x = x.mul_(2.0).sub_(1.0)  # to [-1, 1]; no re-quantisation to uint8
    return Clip(video_id=video_id, index=index, frames=x, start=start, valid=valid, **kw)


def cut_clips(
    frames: Iterable[torch.Tensor],
    clip_len: int | None,
    clip_stride: int | None = None,
    tail: str = "repeat",
    video_id: str = "",
    source: str = "",
    source_fps: float | None = None,
    fps: float | None = None,
) -> Iterator[Clip]:
    """Clips from float (3, H, W) frames in [0, 1], streamed.

    Raises VideoError for a video without frames, or one shorter than a clip with
    ``tail='drop'`` (it would give no clip at all and must not vanish silently).
    """
    source = source or video_id
    meta = {"source_fps": source_fps, "fps": fps}
    if clip_len is None:
        allf = list(frames)
        if not allf:
            raise VideoError(source, "video has no frames")
        yield _make_clip(allf, len(allf), video_id, 0, 0, **meta)
        return
    stride = clip_stride or clip_len
    buf: deque[torch.Tensor] = deque()
    buf_start = 0  # sampled-frame index of buf[0]
    s = 0  # start of the next window
    n = 0  # frames seen
    index = 0
    covered = 0
    for f in frames:
        n += 1
        if n - 1 < s:  # stride > clip_len: frames between windows are skipped
            buf_start = n
            continue
        buf.append(f)
        if s + clip_len <= n:
            yield _make_clip(list(buf)[s - buf_start : s - buf_start + clip_len], clip_len, video_id, index, s, **meta)
            index += 1
            covered = s + clip_len
            s += stride
            while buf and buf_start < s:
                buf.popleft()
                buf_start += 1
            if not buf:
                buf_start = n
    if n == 0:
        raise VideoError(source, "video has no frames")
    if s < n and covered < n:
        if tail == "repeat":
            yield _make_clip(list(buf)[s - buf_start :], clip_len, video_id, index, s, **meta)
            index += 1
    if index == 0:
        raise VideoError(source, f"video has {n} sampled frames, fewer than one clip of {clip_len} (tail=drop)")
