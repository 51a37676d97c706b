"""Cutting a stream of preprocessed frames into clips.

Clips start at 0, stride, 2*stride, ... among the sampled frames (stride = clip_len by
default: non-overlapping). Full windows are emitted as they fill. After the last full
window, one partial window covers the frames not yet covered, if any: with
``tail='repeat'`` it is filled by repeating its last real frame (VidTok's choice, recorded
in ``Clip.valid``); with ``tail='drop'`` it is left out. ``clip_len=None`` makes the whole
video one clip. Only ``max(clip_len, stride)`` small frames are buffered.

Every clip records the source frame number of each of its frames (``Clip.source_indices``)
and a video's last clip carries ``video_checksum``: the XXH3-128 of the XXH3-128 digests of the source
frames as decoded (8-bit YUV 4:2:0 planes where the source delivers them, else uint8 RGB; before resize)
at the sampled positions the clips hold, each position once, in order (:class:`FrameDigest`; frame
manifests v4). With
the default non-overlapping clips and ``tail='repeat'`` that is every sampled frame; overlap
does not hash a frame twice, tail padding is not hashed, frames a dropped tail or a gap
between windows (stride > clip_len) would have used are not hashed, and a frame that
timestamp sampling repeats is hashed at each position it fills.
"""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import xxhash

from ..data import Clip
from ..errors import VideoError
from .resize import to_signed
from .yuv_lut import Yuv420Lut, pack, packed_size


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


def frame_digest(rgb: np.ndarray | torch.Tensor) -> bytes:
    """The XXH3-128 digest (16 bytes) of one uint8 RGB frame (H, W, 3, row-major bytes): the unit
    :class:`FrameDigest` chains for sources that decode to RGB (images, procedural frames, other formats).

    A checksum against accidental change (a re-encoded or another version of a file), not a
    cryptographic hash: sha256 (manifests v1/v2) cost ~5 ms per 1080p frame on one core, as much as
    the frame's RGB conversion and ten times its decode on a 16-core GPU host, so hashing alone kept
    the data path far below decode speed; XXH3 takes ~0.25 ms (25 GB/s) and releases the GIL.
    Computed where the frame is converted, on the decoder's worker threads.
    """
    a = rgb.numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
        raise TypeError(f"frame checksums take uint8 (H, W, 3) RGB frames, got {a.dtype} {a.shape}")
    return xxhash.xxh3_128(memoryview(np.ascontiguousarray(a)).cast("B")).digest()


def planes_digest(planes: Sequence[np.ndarray]) -> bytes:
    """The XXH3-128 digest of one frame's decoded 8-bit planes (Y, Cb, Cr: their visible bytes, row-major,
    concatenated): the unit :class:`FrameDigest` chains for 8-bit YUV 4:2:0 sources (manifests v4).

    Why the decoded planes rather than RGB: they are what the file holds, so the checksum no longer needs
    the RGB conversion, which runs on the GPU when the run preprocesses there (:mod:`.yuv_lut`); hashing
    them is half the bytes of RGB.
    """
    h = xxhash.xxh3_128()
    for p in planes:
        if p.dtype != np.uint8 or p.ndim != 2:
            raise TypeError(f"plane checksums take uint8 2-D planes, got {p.dtype} {p.shape}")
        h.update(memoryview(np.ascontiguousarray(p)).cast("B"))
    return h.digest()


class FrameDigest:
    """A video's checksum: the XXH3-128 of its frames' XXH3-128 digests (:func:`planes_digest` or
    :func:`frame_digest`), in the order given, as 32 hex digits (frame manifests v4).

    Why: a video's ``video_checksum`` lets a replay or a comparison tell that the source content
    changed (re-encoded, another version) even when names and frame counts match. Chaining per-frame
    digests lets the frames be hashed in parallel, as they are converted, and only 16 bytes per frame
    pass through here. (Manifests v1 hashed the frames' bytes in one running sha256, v2 chained
    per-frame sha256s, v3 per-frame XXH3-128s of RGB frames.)
    """

    def __init__(self) -> None:
        self._h = xxhash.xxh3_128()
        self.frames = 0

    def update(self, rgb: np.ndarray | torch.Tensor) -> None:
        """Add one uint8 (H, W, 3) frame (hashed here; :meth:`add` takes a digest computed elsewhere)."""
        self.add(frame_digest(rgb))

    def add(self, frame_digest: bytes) -> None:
        if len(frame_digest) != 16:
            raise ValueError(f"a frame digest is 16 bytes (XXH3-128), got {len(frame_digest)}")
        self._h.update(frame_digest)
        self.frames += 1

    def snapshot(self) -> Callable[[], str | None]:
        """The digest of the frames given so far, to read later (None when there were none)."""
        value = self._h.hexdigest() if self.frames else None
        return lambda: value

    def hexdigest(self) -> str | None:
        return self.snapshot()()

    def close(self) -> None:
        """Nothing to release (kept so callers need not know how the digest is computed)."""


class ClipBuffer:
    """One uint8 clip's (T, H, W, 3) tensor (or (T, N) packed YUV 4:2:0 frames), allocated by the first
    converting thread that has a frame for it.

    Why: copying each 1080p frame (6 MB) into its clip on the thread that runs the decoder, plus the
    first-touch page faults of a fresh clip tensor, cost more than decoding the frame and capped one
    video's uint8 pipeline well below its decode rate; the converting threads now write their own
    frames into place, in parallel (:class:`ClipPlacement`).
    """

    def __init__(self, length: int, pin: bool = False):
        self.length, self.pin = length, pin
        self.tensor: torch.Tensor | None = None
        self._lock = threading.Lock()

    def _slot(self, slot: int, shape: tuple[int, ...]) -> torch.Tensor | None:
        with self._lock:
            if self.tensor is None:
                self.tensor = torch.empty((self.length, *shape), dtype=torch.uint8, pin_memory=self.pin)
        return self.tensor[slot] if tuple(self.tensor.shape[1:]) == tuple(shape) else None

    def put(self, slot: int, rgb: np.ndarray) -> torch.Tensor | None:
        """Copy ``rgb`` (H, W, 3) into frame ``slot`` and return that frame's view (None: another frame size)."""
        dst = self._slot(slot, rgb.shape)
        if dst is not None:
            dst.copy_(torch.from_numpy(np.ascontiguousarray(rgb)))
        return dst

    def put_planes(self, slot: int, planes: tuple[np.ndarray, np.ndarray, np.ndarray]) -> torch.Tensor | None:
        """Pack Y, Cb, Cr planes into frame ``slot`` (see :func:`~.yuv_lut.pack`); None: another frame size."""
        dst = self._slot(slot, (packed_size(*planes[0].shape),))
        if dst is not None:
            pack(planes, dst.numpy())
        return dst


class ClipPlacement:
    """Sampled position -> (its clip's :class:`ClipBuffer`, frame slot), for uint8 clips of non-overlapping
    windows (``stride >= clip_len``, the windows :func:`cut_clips` cuts); None for a frame between windows.

    Called once per sampled position, in order, on the decoding thread: a new window gets a new buffer, and
    the previous one is no longer referenced here (its frames and clip keep it alive).
    """

    def __init__(self, clip_len: int, stride: int | None = None, pin: bool = False):
        self.clip_len, self.stride, self.pin = clip_len, stride or clip_len, pin
        if self.stride < clip_len:
            raise ValueError("clip placement needs non-overlapping windows (stride >= clip_len)")
        self._window, self._buffer = -1, None

    def __call__(self, position: int) -> tuple[ClipBuffer, int] | None:
        window, slot = divmod(position, self.stride)
        if slot >= self.clip_len:
            return None
        if window != self._window:
            self._window, self._buffer = window, ClipBuffer(self.clip_len, self.pin)
        return self._buffer, slot


@dataclass
class SampledFrame:
    """One sampled frame on its way into clips."""

    index: int  # the source video's frame number
    #: float (3, h, w) in [0, 1], or the uint8 (H, W, 3) source frame itself (uint8 clips), or its packed
    #: YUV 4:2:0 planes (N,) with ``yuv`` the exact table that makes them RGB (:mod:`.yuv_lut`)
    frame: torch.Tensor
    rgb: np.ndarray | None = None  # the uint8 source frame before resize, hashed on arrival (when digest is not given)
    digest: bytes | None = None  # frame_digest of the source frame, computed where it was converted
    clip: torch.Tensor | None = None  # uint8 frames: the clip tensor ``frame`` was written into (ClipPlacement)
    yuv: Yuv420Lut | None = None  # packed YUV frames: their RGB conversion


def _make_clip(frames: list[tuple[int, torch.Tensor]], length: int, video_id: str, index: int, start: int,
               pin: bool = False, into: torch.Tensor | None = None, **kw) -> Clip:
    valid = len(frames)
    if valid < length:
        frames = frames + [frames[-1]] * (length - valid)
    first = frames[0][1]
    if into is not None:  # uint8 frames already copied into the clip's tensor as they arrived
        into[valid:] = into[valid - 1]
        x = _uint8_clip(into)
    elif first.dtype == torch.uint8:
        # uint8 clips (preprocess_on=device): source-size frames stacked as (T, H, W, 3) (or (T, N) packed
        # YUV), in pinned memory when they go to a GPU; resized later on the device
        out = torch.empty((length, *first.shape), dtype=torch.uint8, pin_memory=pin)
        x = _uint8_clip(torch.stack([f for _, f in frames], dim=0, out=out))
    else:
        x = to_signed(torch.stack([f for _, f in frames], dim=1))  # (3, T, H, W) in [0, 1] -> [-1, 1]
    return Clip(video_id=video_id, index=index, frames=x, start=start, valid=valid,
                source_indices=tuple(i for i, _ in frames), **kw)


def _uint8_clip(stacked: torch.Tensor) -> torch.Tensor:
    """A clip's ``frames`` from its stacked uint8 frames: RGB (T, H, W, 3) -> the (3, T, H, W) view,
    packed YUV (T, N) -> (1, T, N) (``Clip.yuv`` converts it)."""
    return stacked.permute(3, 0, 1, 2) if stacked.dim() == 4 else stacked.unsqueeze(0)


class _LastClipDigest:
    """Holds each clip back until the next one exists, so the video's last clip can carry the
    digest of the frames the clips hold (taken when that clip was cut: frames that only a
    dropped tail would have used are not in it). A clip known not to be the last is let go at
    once (:meth:`release`): with uint8 1080p clips each one held is ~100 MB of host memory."""

    def __init__(self, digest: FrameDigest):
        self.digest = digest
        self.held: tuple[Clip, Callable[[], str | None]] | None = None

    def push(self, clip: Clip) -> Iterator[Clip]:
        if self.held is not None:
            yield self.held[0]
        self.held = (clip, self.digest.snapshot())

    def release(self) -> Iterator[Clip]:
        """The held clip is known not to be the video's last: it goes now, without a digest."""
        if self.held is not None:
            clip, _ = self.held
            self.held = None
            yield clip

    def finish(self) -> Iterator[Clip]:
        if self.held is not None:
            clip, digest = self.held
            self.held = None
            clip.video_checksum = digest()
            yield clip


def _take(item: torch.Tensor | SampledFrame, position: int, digest: FrameDigest, meta: dict) -> tuple[int, torch.Tensor]:
    """(source index, frame) of one stream item; a bare tensor's index is its sampled position."""
    if isinstance(item, SampledFrame):
        if item.yuv is not None:
            meta["yuv"] = item.yuv  # the clips of a video converted on the device carry their table
        if item.digest is not None:
            digest.add(item.digest)
        elif item.rgb is not None:
            digest.update(item.rgb)
        return item.index, item.frame
    return position, item


def _size_change(source: str, before: torch.Tensor, after: torch.Tensor) -> VideoError:
    """uint8 clips stack source-size frames, so a video whose frame size changes cannot make them."""
    if before.dim() != 3 or after.dim() != 3:  # packed YUV frames: sizes are checked where they are packed
        return VideoError(source, f"the frame layout changes within the video ({tuple(before.shape)} -> "
                                  f"{tuple(after.shape)}); preprocess_on=cpu converts each frame on its own")
    (h0, w0), (h1, w1) = before.shape[:2], after.shape[:2]
    return VideoError(source, f"the frame size changes within the video ({w0}x{h0} -> {w1}x{h1}); uint8 clips "
                              "(preprocess_on=device) hold one size, preprocess_on=cpu resizes each frame")


def _placed_clip(item: torch.Tensor | SampledFrame) -> torch.Tensor | None:
    return item.clip if isinstance(item, SampledFrame) else None


def cut_clips(
    frames: Iterable[torch.Tensor | SampledFrame],
    clip_len: int | None,
    clip_stride: int | None = None,
    tail: str = "repeat",
    video_id: str = "",
    source: str = "",
    source_fps: float | None = None,
    fps: float | None = None,
    source_size: tuple[int, int] | None = None,
    pin: bool = False,
) -> Iterator[Clip]:
    """Clips from float (3, H, W) frames in [0, 1] (or :class:`SampledFrame`), streamed.

    Frames given as uint8 (H, W, 3) make uint8 clips: ``frames`` a (3, T, H, W) view of the
    stacked source frames (in pinned memory with ``pin``), for :func:`~.resize.preprocess_frames`
    to resize later (``preprocess_on=device``); sampling, windows, tail repeat, source indices
    and the digest are the same.

    Each clip records its frames' source indices; frames given as :class:`SampledFrame` with
    ``rgb`` are hashed as they arrive (each sampled position a clip holds, once) and the last
    clip carries the digest as ``video_checksum``. Raises VideoError for a video without frames,
    or one shorter than a clip with ``tail='drop'`` (it would give no clip at all and must not
    vanish silently).
    """
    meta = {"source_fps": source_fps, "fps": fps, "source_size": source_size, "pin": pin}
    digest = FrameDigest()
    try:
        yield from _cut(frames, clip_len, clip_stride, tail, video_id, source or video_id, meta, digest)
    finally:
        digest.close()


def _cut(
    frames: Iterable[torch.Tensor | SampledFrame], clip_len: int | None, clip_stride: int | None, tail: str,
    video_id: str, source: str, meta: dict, digest: FrameDigest,
) -> Iterator[Clip]:
    out = _LastClipDigest(digest)
    if clip_len is None:
        allf = [_take(f, n, digest, meta) for n, f in enumerate(frames)]
        if not allf:
            raise VideoError(source, "video has no frames")
        yield from out.push(_make_clip(allf, len(allf), video_id, 0, 0, **meta))
        yield from out.finish()
        return
    stride = clip_stride or clip_len
    buf: deque[tuple[int, torch.Tensor]] = deque()
    buf_start = 0  # sampled-frame index of buf[0]
    s = 0  # start of the next window
    n = 0  # frames seen
    index = 0
    covered = 0
    # uint8 source frames of windows that do not overlap are copied into their clip's tensor on arrival
    # (and the decoded frame let go): a 1080p clip is then held once, not as frames and again stacked
    into: torch.Tensor | None = None
    for f in frames:
        n += 1
        if n - 1 < s:  # stride > clip_len: frames between windows are skipped (and not hashed)
            buf_start = n
            continue
        i, frame = _take(f, n - 1, digest, meta)
        if frame.dtype == torch.uint8 and buf and buf[-1][1].shape != frame.shape:
            raise _size_change(source, buf[-1][1], frame)
        if frame.dtype == torch.uint8 and stride >= clip_len:
            slot = n - 1 - s
            placed = _placed_clip(f)
            if into is None and slot == 0 and placed is not None and placed[0].data_ptr() == frame.data_ptr():
                into = placed  # the converting threads write this window's frames into place (ClipPlacement)
            if into is None:
                into = torch.empty((clip_len, *frame.shape), dtype=torch.uint8, pin_memory=bool(meta.get("pin")))
            if into[slot].data_ptr() != frame.data_ptr():  # not already in place: copy it here
                into[slot] = frame
                frame = into[slot]
        buf.append((i, frame))
        if tail == "repeat":  # a frame a clip will hold arrived: the clip cut before it is not the last
            yield from out.release()
        if s + clip_len <= n:
            yield from out.push(_make_clip(list(buf)[s - buf_start : s - buf_start + clip_len], clip_len, video_id, index, s,
                                           into=into, **meta))
            into = None
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
            yield from out.push(_make_clip(list(buf)[s - buf_start :], clip_len, video_id, index, s, into=into, **meta))
            index += 1
    if index == 0:
        raise VideoError(source, f"video has {n} sampled frames, fewer than one clip of {clip_len} (tail=drop)")
    yield from out.finish()


def recorded_clips(
    frames: Iterable[SampledFrame],
    positions: Sequence[int],
    windows: Sequence[tuple[int, int]],
    clip_len: int | None,
    video_id: str = "",
    source: str = "",
    **meta: object,
) -> Iterator[Clip]:
    """Clips at recorded ``(start, valid)`` windows (a frame manifest's) rather than planned ones.

    ``frames`` arrive in the order of ``positions`` (the sampled positions the windows hold,
    each once, increasing); a clip is emitted as soon as its last frame arrived and frames no
    later window needs are dropped. Hashing and the last clip's ``video_checksum`` work as in
    :func:`cut_clips`. A stream that ends early is a VideoError.
    """
    digest = FrameDigest()
    out = _LastClipDigest(digest)
    buf: dict[int, tuple[int, torch.Tensor]] = {}
    k = 0
    try:
        for pos, f in zip(positions, frames):
            buf[pos] = _take(f, pos, digest, meta)
            while k < len(windows) and sum(windows[k]) - 1 <= pos:
                start, valid = windows[k]
                yield from out.push(_make_clip([buf[p] for p in range(start, start + valid)], clip_len or valid,
                                               video_id, k, start, **meta))
                if k + 1 < len(windows):  # the windows are known: only the last clip waits for the digest
                    yield from out.release()
                k += 1
                keep_from = windows[k][0] if k < len(windows) else pos + 1
                for p in [p for p in buf if p < keep_from]:
                    del buf[p]
        if k < len(windows):
            raise VideoError(source or video_id, f"the frames ended before clip {k} of {len(windows)}")
        yield from out.finish()
    finally:
        digest.close()
