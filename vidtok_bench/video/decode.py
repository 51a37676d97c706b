"""Streaming video decode -> fps sampling -> per-frame resize -> clips.

PyAV decodes with the codec's own threads (``thread_type = "AUTO"``). Each kept frame is
converted to RGB (FFmpeg honours the stream's colour matrix, e.g. BT.709 for HD), made float
and resized at once, so only small float frames are ever held; the RGB conversion and resize
of successive frames run in a small thread pool (torch and swscale release the GIL) while
the next frames decode. Raw ``.yuv`` files go through :mod:`.yuv` and the same path;
procedurally generated frames (the synthetic set) use :func:`frames_to_clips` directly.

Clips for a GPU (``clip_frames='yuv_pinned'``) carry 8-bit YUV 4:2:0 sources' decoded planes instead of RGB:
the worker threads only hash and pack them, and the preprocess stage converts them on the device with a
table that reproduces this process's CPU conversion exactly (:mod:`.yuv_lut`, checked per video on its
first frame; a video whose frames it cannot reproduce gets RGB clips as before).
"""
from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator, Sequence

import av
import av.logging
import numpy as np
import torch
from av.video.reformatter import VideoReformatter

from ..data import Clip, Preprocess
from ..errors import VideoError, check_choice
from .clips import ClipPlacement, SampledFrame, cut_clips, frame_digest, planes_digest, recorded_clips
from .resize import FrameResizer
from .sampling import as_fraction, sample_stride, sample_timestamps, stride_step
from .yuv import iter_yuv_planes, probe_yuv, yuv420_to_rgb
from .yuv_lut import Converter, Yuv420Lut, lut_for, matches, pack

log = logging.getLogger(__name__)

RAW_YUV_EXTENSIONS = (".yuv",)

#: what a clip's ``frames`` hold: 'float' (resized, [-1, 1]: the CPU pipeline), 'uint8' (the sampled
#: source frames, resized later by the run's preprocess stage: ``preprocess_on=device``), 'pinned'
#: (uint8 in page-locked memory, for non-blocking copies to a GPU), 'yuv' / 'yuv_pinned' (as 'uint8' /
#: 'pinned', but 8-bit YUV 4:2:0 sources' frames stay packed planes, converted to RGB by the stage: :mod:`.yuv_lut`)
CLIP_FRAMES = ("float", "uint8", "pinned", "yuv", "yuv_pinned")

#: seconds one video may spend decoding before it is failed (the file datasets' ``decode_timeout_s``)
DEFAULT_DECODE_TIMEOUT_S = 600.0


def default_workers(clip_frames: str = "float") -> int:
    """Conversion threads within one video: up to 4 for float and YUV clips, up to 16 for uint8 RGB clips;
    never more than the cores.

    Float clips: the float resize of a 1080p frame costs several times its decode, so throughput
    grows with these threads, but so does memory (each holds full-resolution float frames): on a
    16-core machine 4 threads kept the 1080p pipeline's peak RSS under 1 GB, 8 gave ~1.2 GB and
    about twice the frames/s. uint8 RGB clips (``preprocess_on=device`` without a GPU conversion): a thread
    converts to RGB (~3 ms per 1080p frame on the H100 host), hashes and places one frame, so more threads
    cost little memory and keep one video's pipeline nearer its decode rate. YUV clips: a thread only hashes
    and packs the planes (well under 1 ms), and on the H100 host 4 threads beat 16 (1644 against 1383
    1080p frames/s, bare decode 1838; more threads only contend with the decoder's). Datasets take
    ``workers`` to choose.
    """
    cap = 16 if clip_frames in ("uint8", "pinned") else 4
    return max(1, min(cap, os.cpu_count() or 1))


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class YuvFrames:
    """How a source's raw frames expose 8-bit YUV 4:2:0 planes, and the CPU conversion ``to_rgb`` applies to them."""

    planes: Callable[[Any], Planes | None]  # Y (H, W), Cb, Cr views of a raw frame; None: not 8-bit 4:2:0
    layout: Callable[[Any], Hashable]  # frames of equal layout convert alike (format, size, colour matrix and range)
    converter: Callable[[Any], Converter]  # planes -> RGB exactly as ``to_rgb`` converts frames like this one


@dataclass
class FrameSource:
    """A video as a lazy stream of ``(start_time, raw_frame)`` plus a raw -> uint8 RGB converter."""

    path: str
    width: int
    height: int
    fps: Fraction | None  # nominal source frame rate (None if unknown)
    frames: Callable[[], Iterator[tuple[Fraction, Any]]]
    to_rgb: Callable[[Any], np.ndarray]
    num_frames: int | None = None  # from the container; may be absent or approximate
    yuv: YuvFrames | None = None  # sources that decode to YUV 4:2:0: checksummed and converted from their planes


_LOCAL = threading.local()


def av_frame_to_rgb(frame: "av.VideoFrame") -> np.ndarray:
    """uint8 RGB (H, W, 3) of a decoded frame, exactly ``frame.to_ndarray(format="rgb24")``.

    ``to_ndarray`` builds a new swscale context for every new frame object; one reformatter
    per thread reuses its context (same values, tested) and single-threaded swscale avoids
    oversubscribing the cores when several frames are converted at once.
    """
    r = getattr(_LOCAL, "reformatter", None)
    if r is None:
        r = _LOCAL.reformatter = VideoReformatter()
    return r.reformat(frame, format="rgb24", threads=1).to_ndarray()


#: PyAV formats whose frames are 8-bit planar 4:2:0 (Y, Cb, Cr planes)
AV_YUV420 = ("yuv420p", "yuvj420p")


def av_planes(frame: "av.VideoFrame") -> Planes | None:
    """Read-only views of a decoded frame's Y, Cb, Cr planes (line padding cut off); None for other formats."""
    if frame.format.name not in AV_YUV420:
        return None
    out = []
    for p in frame.planes:
        a = np.frombuffer(p, np.uint8).reshape(-1, p.line_size)
        out.append(a[: p.height, : p.width])
    return out[0], out[1], out[2]


def _av_layout(frame: "av.VideoFrame") -> Hashable:
    return ("av", frame.format.name, frame.width, frame.height, int(frame.colorspace), int(frame.color_range))


def _av_converter(like: "av.VideoFrame") -> Converter:
    """Planes -> RGB through :func:`av_frame_to_rgb`, for frames of ``like``'s format, colour matrix and range."""
    fmt, colorspace, color_range = like.format.name, like.colorspace, like.color_range

    def convert(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
        frame = av.VideoFrame(y.shape[1], y.shape[0], fmt)
        for plane, a in zip(frame.planes, (y, cb, cr)):
            rows = np.zeros((a.shape[0], plane.line_size), np.uint8)
            rows[:, : a.shape[1]] = a
            plane.update(rows)
        frame.colorspace, frame.color_range = colorspace, color_range
        return av_frame_to_rgb(frame)

    return convert


AV_YUV = YuvFrames(av_planes, _av_layout, _av_converter)


def _one_line(exc: BaseException) -> str:
    """First line of an exception's message; the type name when it has none (or is not an FFmpeg error)."""
    text = getattr(exc, "strerror", None) or str(exc).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(exc, (av.FFmpegError, OSError)) and line:
        return line
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


def _av_error(path: str, exc: BaseException, what: str) -> VideoError:
    """One-line VideoError for any exception PyAV raised on this file.

    Corrupt data makes PyAV raise more than ``av.FFmpegError`` (e.g. ``UnicodeDecodeError``
    from garbled metadata, ``ValueError`` from a frame it cannot convert), so callers catch
    ``Exception`` around PyAV calls and let this name the type.
    """
    return VideoError(path, f"{what}: {_one_line(exc)}")


class DecodeBudget:
    """Seconds one video has spent *decoding*, against ``limit_s`` (None: unlimited).

    Clips are streamed, so the decode generator is suspended while the consumer encodes and
    scores each clip; that time is not decoding and is left out (:meth:`pause` /
    :meth:`resume` around each ``yield``), else a slow tokenizer would fail long videos.
    """

    def __init__(self, path: str, limit_s: float | None):
        self.path, self.limit_s = path, limit_s
        self.spent = 0.0
        self._since: float | None = time.monotonic()

    def elapsed(self) -> float:
        return self.spent + (time.monotonic() - self._since if self._since is not None else 0.0)

    def remaining(self) -> float | None:
        return None if self.limit_s is None else max(0.0, self.limit_s - self.elapsed())

    def check(self) -> None:
        """Raise VideoError once the budget is spent (called per packet)."""
        if self.limit_s is not None and self.elapsed() > self.limit_s:
            raise self.exceeded()

    def exceeded(self) -> VideoError:
        return VideoError(self.path, f"decoding took longer than {self.limit_s:g} s (dataset.decode_timeout_s)")

    def pause(self) -> None:
        self.spent, self._since = self.elapsed(), None

    def resume(self) -> None:
        self._since = time.monotonic()


def _av_open(path: str, budget: DecodeBudget) -> "av.container.InputContainer":
    """``av.open`` that tolerates garbled metadata and gives up on a stuck open/read after the budget.

    PyAV's ``timeout`` interrupts FFmpeg's blocking I/O (``av.ExitError``): the open may take
    what is left of the budget, each read at most the whole budget.
    """
    left = budget.remaining()
    timeout = None if left is None else (left, budget.limit_s)
    try:
        return av.open(path, metadata_errors="replace", timeout=timeout)
    except av.ExitError:
        raise budget.exceeded() from None
    except Exception as exc:  # see _av_error: not only av.FFmpegError
        raise _av_error(path, exc, "cannot open video") from None


def open_av(path: str | Path, timeout_s: float | None = None) -> FrameSource:
    """Probe a container file with PyAV (raises VideoError when it cannot be opened).

    ``timeout_s`` bounds the seconds spent decoding the video (each call of ``frames()``),
    checked per packet; the probe's open is bounded by it too.
    """
    path = str(path)
    if not os.path.exists(path):
        raise VideoError(path, "file not found")
    if not os.path.isfile(path):
        raise VideoError(path, "not a regular file")
    c = _av_open(path, DecodeBudget(path, timeout_s))
    try:
        with c:
            if not c.streams.video:
                raise VideoError(path, "no video stream")
            s = c.streams.video[0]
            rate = s.average_rate or s.guessed_rate or s.base_rate
            width, height, n = s.codec_context.width, s.codec_context.height, s.frames or None
            if n is None and c.duration and rate:  # e.g. Matroska: only a duration in the header
                n = round(c.duration / 1_000_000 * float(rate))
            source_fps = Fraction(rate) if rate else None
    except VideoError:
        raise
    except Exception as exc:  # see _av_error
        raise _av_error(path, exc, "cannot read the video stream") from None

    def frames() -> Iterator[tuple[Fraction, Any]]:
        budget = DecodeBudget(path, timeout_s)
        container = _av_open(path, budget)
        i = -1
        try:
            stream = container.streams.video[0]
            if av.logging.get_level() is None:
                stream.thread_type = "AUTO"
            else:
                # PyAV's Python log callback can deadlock with codec threads (a thread logging
                # waits for the GIL that the decoding thread holds): decode single-threaded then
                stream.thread_count = 1
            tb = stream.time_base
            # demux + decode per packet (what container.decode does) so the budget is checked
            # even while packets yield no frames
            for packet in container.demux(stream):
                budget.check()
                for frame in packet.decode():
                    i += 1
                    if frame.pts is not None and tb is not None:
                        t = Fraction(frame.pts) * tb
                    elif source_fps:
                        t = Fraction(i) / source_fps
                    else:
                        raise VideoError(path, "frames have no timestamps and the stream no frame rate")
                    budget.pause()
                    yield t, frame
                    budget.resume()
            # reached only when the whole stream was read: a file cut short decodes without
            # an error but yields fewer frames than its header declares
            if n is not None and i + 1 < n - max(2, 0.02 * n):
                raise VideoError(path, f"file looks truncated: decoded {i + 1} frames, its header declares {n}")
        except VideoError:
            raise
        except av.ExitError:  # PyAV's I/O timeout interrupted a read
            raise budget.exceeded() from None
        except Exception as exc:  # see _av_error
            raise _av_error(path, exc, f"decoding failed after {i + 1} frames") from None
        finally:
            container.close()

    return FrameSource(path, width, height, source_fps, frames, av_frame_to_rgb, n, AV_YUV)


def open_yuv(
    path: str | Path, width: int | None = None, height: int | None = None, source_fps: float | None = None,
    matrix: str = "bt709",
) -> FrameSource:
    """A raw 8-bit YUV 4:2:0 file (size and source frame rate from ``*_WxH_FPS.yuv`` or given)."""
    info = probe_yuv(path, width, height, source_fps)

    def frames() -> Iterator[tuple[Fraction, Any]]:
        for i, planes in enumerate(iter_yuv_planes(path, info)):
            yield Fraction(i) / info.fps, planes

    def convert(y: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> np.ndarray:
        return yuv420_to_rgb(y, cb, cr, matrix)

    yuv = YuvFrames(lambda planes: planes, lambda _: ("raw", matrix, info.width, info.height), lambda _: convert)
    return FrameSource(str(path), info.width, info.height, info.fps, frames, lambda planes: convert(*planes),
                       info.num_frames, yuv)


def open_video(path: str | Path, timeout_s: float | None = None, **yuv: Any) -> FrameSource:
    """Any supported file: raw ``.yuv`` through numpy, everything else through PyAV (``timeout_s``: see open_av)."""
    if str(path).lower().endswith(RAW_YUV_EXTENSIONS):
        return open_yuv(path, **yuv)
    return open_av(path, timeout_s)


def sample(src_frames: Iterable[tuple[Fraction, Any]], source_fps: Fraction | None, pp: Preprocess, path: str) -> Iterator[Any]:
    """Keep the raw frames the sampling mode asks for (nothing converted yet)."""
    if pp.fps is None:
        return (item for _, item in src_frames)
    if pp.sampling == "stride":
        if not source_fps:
            raise VideoError(path, "source frame rate unknown; stride sampling needs it (set dataset.source_fps)")
        return sample_stride((item for _, item in src_frames), stride_step(float(source_fps), pp.fps))
    duration = 1 / source_fps if source_fps else Fraction(0)
    return sample_timestamps(src_frames, as_fraction(pp.fps), duration)


@contextlib.contextmanager
def _closed_after(frames: Iterator[Any]) -> Iterator[Iterator[Any]]:
    """Close a frame generator when reading stops, so a decoder stopped early releases its container now."""
    try:
        yield frames
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


def number_frames(
    frames: Iterator[tuple[Fraction, Any]], path: str, start: int = 0, end: int | None = None
) -> Iterator[tuple[Fraction, tuple[int, Any]]]:
    """``(time, (source index, item))`` for the source frames ``start <= i < end`` (end None: to the last).

    Numbering happens before sampling so every clip can name the source frames it holds. A
    range reaching past the video's last frame is a VideoError (its frames do not exist).
    """
    count = 0
    with _closed_after(frames):
        for i, (t, item) in enumerate(frames):
            count = i + 1
            if i >= start:
                yield t, (i, item)
            if end is not None and count >= end:
                return  # the frame after the range is not even read
    if (start > 0 or end is not None) and (count <= start or (end is not None and count < end)):
        want = f"frames {start}-{end - 1}" if end is not None else f"frames from {start}"
        raise VideoError(path, f"the video has {count} frames; the range asks for {want}")


def select_frames(frames: Iterator[tuple[Fraction, Any]], wanted: Sequence[int], path: str) -> Iterator[tuple[int, Any]]:
    """``(source index, item)`` for each of ``wanted`` (non-decreasing source indices, e.g. a
    manifest's): the video is read once and only up to the last wanted frame; a repeated index
    yields the same object again, so it is converted once."""
    k, count = 0, 0
    with _closed_after(frames):
        for i, (_, item) in enumerate(frames):
            count = i + 1
            pair = (i, item)
            while k < len(wanted) and wanted[k] == i:
                yield pair
                k += 1
            if k >= len(wanted):
                return  # not even the next frame is read
    if k < len(wanted):
        raise VideoError(path, f"the video has {count} frames; frame {wanted[k]} is needed")


def yuv_table(source: FrameSource, item: Any) -> Yuv420Lut | None:
    """The exact device conversion for ``source``'s frames like ``item`` (see :mod:`.yuv_lut`), or None:
    not 8-bit 4:2:0 with an even size, or a table that does not reproduce ``to_rgb`` on the first real frame
    of its layout (this one, or an earlier video's)."""
    planes = source.yuv.planes(item) if source.yuv is not None else None
    if planes is None:
        return None
    h, w = planes[0].shape
    if h % 2 or w % 2:
        return None
    lut = lut_for(source.yuv.layout(item), source.yuv.converter(item), w,
                  lambda table: matches(table, planes, source.to_rgb(item)))
    if lut is None:
        log.info("%s: frames are converted to RGB on the CPU (no exact device conversion for this layout)", source.path)
    return lut


class ReadAhead:
    """Iterate ``items`` on a thread of its own, up to ``depth`` items ahead of the consumer.

    Why: the thread that decodes also runs every frame's Python bookkeeping (sampling, submitting the
    conversion, cutting clips), one after the other; on the 16-core H100 host the YUV clips reached ~0.6x of
    bare decode with only 7.7 cores busy, which suggested that serial work. Decoding waits with the GIL
    released, so a reading thread overlaps the two. Measured there with 16 conversion threads it gained
    nothing clear (clips 1383 vs 1385 frames/s, whole path 763 vs 740: within the host's run-to-run spread);
    with 4 threads the clips reached 0.89x, not measured without it. Exceptions reach the consumer at the
    item where they happened; :meth:`close` stops the thread and closes ``items`` there (a video abandoned
    early releases its file).
    """

    _END = object()

    def __init__(self, items: Iterator[Any], depth: int = 8):
        self._items = items
        self._q: "queue.Queue[tuple[Any, BaseException | None]]" = queue.Queue(depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._read, name="vidtok-read", daemon=True)
        self._thread.start()

    def _put(self, entry: tuple[Any, BaseException | None]) -> bool:
        while not self._stop.is_set():
            try:
                self._q.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        try:
            for item in self._items:
                if not self._put((item, None)):
                    return
            self._put((self._END, None))
        except BaseException as exc:  # handed to the consumer, raised there
            self._put((self._END, exc))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> "ReadAhead":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        item, exc = self._q.get()
        if item is self._END:
            self._done = True
            self._thread.join()
            if exc is not None:
                raise exc
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop reading ahead; returns once the reading thread has closed ``items``."""
        self._done = True
        self._stop.set()
        self._thread.join()


def resized_frames(
    raw: Iterable[tuple[int, Any]], source: FrameSource, resizer: FrameResizer | None,
    max_frames: int | None = None, workers: int = 1, placement: ClipPlacement | None = None, yuv: bool = False,
) -> Iterator[SampledFrame]:
    """Sampled frames in order: ``(source index, raw item)`` of ``source`` in, resized float (3, h, w) in [0, 1]
    plus the source frame's digest (for the video's checksum) out; RGB conversion, hashing and resize
    run on ``workers`` threads. ``resizer=None`` keeps the uint8 (H, W, 3) source frame as the frame
    (uint8 clips); with ``placement`` the threads write it straight into its clip's tensor. With ``yuv``,
    an 8-bit YUV 4:2:0 source's frames stay packed planes (see :func:`yuv_table`), converted later.

    A frame's digest is of its decoded planes when the source has them (``FrameSource.yuv``), else of its
    RGB. At most ``2 * workers`` frames are in flight. A frame repeated by timestamp sampling is
    converted once.
    """
    path, to_rgb = source.path, source.to_rgb
    table: Yuv420Lut | None = None
    layout: Hashable = None

    def packed(item: tuple[int, Any], planes: Planes | None, digest: bytes, place: tuple[Any, int] | None) -> SampledFrame:
        if planes is None or source.yuv.layout(item[1]) != layout:
            raise VideoError(path, "the frame format, size or colour space changes within the video; "
                                   "preprocess_on=cpu converts each frame on its own")
        placed = place[0].put_planes(place[1], planes) if place is not None else None
        if placed is not None:
            return SampledFrame(item[0], placed, digest=digest, clip=place[0].tensor, yuv=table)
        return SampledFrame(item[0], torch.from_numpy(pack(planes)), digest=digest, yuv=table)

    def work(item: tuple[int, Any], place: tuple[Any, int] | None = None) -> SampledFrame:
        planes = source.yuv.planes(item[1]) if source.yuv is not None else None
        # hashed here, on the worker threads, in parallel (not once per video)
        digest = planes_digest(planes) if planes is not None else None
        if table is not None:
            return packed(item, planes, digest, place)
        try:
            rgb = to_rgb(item[1])
        except VideoError:
            raise  # already says which file and what (an image sequence's unreadable frame)
        except Exception as exc:  # PyAV cannot convert a damaged frame (see _av_error)
            raise _av_error(path, exc, "cannot convert a decoded frame to RGB") from None
        try:
            digest = digest or frame_digest(rgb)
        except TypeError as exc:
            raise VideoError(path, str(exc)) from None
        if resizer is None:
            placed = place[0].put(place[1], rgb) if place is not None else None
            if placed is not None:
                return SampledFrame(item[0], placed, digest=digest, clip=place[0].tensor)
            return SampledFrame(item[0], _as_tensor(rgb), digest=digest)
        try:
            return SampledFrame(item[0], resizer(rgb), digest=digest)
        except VideoError as exc:
            raise VideoError(path, exc.problem) from None

    pool = ThreadPoolExecutor(workers, thread_name_prefix="vidtok-resize") if workers > 1 else None
    pending: deque[Future | SampledFrame] = deque()
    last_item: Any = None
    last: Future | SampledFrame | None = None
    count = 0
    try:
        for item in raw:
            if max_frames is not None and count >= max_frames:
                break
            count += 1
            if count == 1 and yuv and resizer is None:  # the video's first frame decides, on the decoding thread
                try:
                    table = yuv_table(source, item[1])
                except Exception as exc:  # a damaged first frame: the RGB path names it (see work)
                    log.info("%s: no device conversion (%s)", path, _one_line(exc))
                layout = source.yuv.layout(item[1]) if table is not None else None
            place = placement(count - 1) if placement is not None else None  # every position, in order
            if item is last_item and last is not None:
                job = last  # a repeated frame stays where it was placed; cut_clips copies it
            elif pool is None:
                job = work(item, place)
            else:
                job = pool.submit(work, item, place)
            last_item, last = item, job
            pending.append(job)
            while len(pending) > 2 * workers or (pool is None and pending):
                j = pending.popleft()
                yield j.result() if isinstance(j, Future) else j
        last_item = last = None
        while pending:
            j = pending.popleft()
            yield j.result() if isinstance(j, Future) else j
    finally:
        if pool is not None:
            for j in pending:
                if isinstance(j, Future):
                    j.cancel()
            pool.shutdown(wait=True)


def _as_tensor(rgb: np.ndarray) -> torch.Tensor:
    """The frame as a tensor sharing its memory (a copy only for a read-only or strided array)."""
    a = rgb if rgb.flags.writeable and rgb.flags.c_contiguous else np.array(rgb, order="C")
    return torch.from_numpy(a)


def _check_clip_frames(clip_frames: str) -> bool:
    """Whether clips are uint8 (see ``CLIP_FRAMES``)."""
    check_choice("clip_frames", clip_frames, CLIP_FRAMES)
    return clip_frames != "float"


def _pinned(clip_frames: str) -> bool:
    return clip_frames in ("pinned", "yuv_pinned")


def output_fps(source_fps: Fraction | None, pp: Preprocess) -> float | None:
    """The frame rate of the sampled frames (recorded on every clip)."""
    if pp.fps is None:
        return float(source_fps) if source_fps else None
    if pp.sampling == "stride" and source_fps:
        return float(source_fps) / stride_step(float(source_fps), pp.fps)
    return float(pp.fps)


def frames_to_clips(
    source: FrameSource, pp: Preprocess, video_id: str, workers: int | None = None,
    frame_range: tuple[int, int | None] | None = None, clip_frames: str = "float",
) -> Iterator[Clip]:
    """The whole pipeline for one video: sample -> resize -> clips (raises VideoError).

    ``frame_range`` = (start, end): only source frames start <= i < end are sampled (lists such
    as TokenBench's fix a range per video); fps sampling starts at ``start``. ``clip_frames``:
    see ``CLIP_FRAMES`` (uint8 clips are resized later, by the run's preprocess stage).
    """
    uint8 = _check_clip_frames(clip_frames)
    resizer = FrameResizer(pp.size, pp.crop, pp.resize)
    resizer.check(source.height, source.width, source.path)
    start, end = frame_range or (0, None)
    numbered = number_frames(ReadAhead(iter(source.frames())), source.path, start, end)
    raw = sample(numbered, source.fps, pp, source.path)
    placement = None
    if uint8 and pp.clip_len is not None and (pp.clip_stride or pp.clip_len) >= pp.clip_len:
        placement = ClipPlacement(pp.clip_len, pp.clip_stride, pin=_pinned(clip_frames))
    frames = resized_frames(raw, source, None if uint8 else resizer, pp.frame_limit(output_fps(source.fps, pp)),
                            workers or default_workers(clip_frames), placement, yuv=clip_frames.startswith("yuv"))
    yield from cut_clips(
        frames, pp.clip_len, pp.clip_stride, pp.tail, video_id=video_id, source=source.path,
        source_fps=float(source.fps) if source.fps else None, fps=output_fps(source.fps, pp),
        source_size=(source.width, source.height), pin=_pinned(clip_frames),
    )


def replay_clips(
    source: FrameSource, pp: Preprocess, video_id: str, positions: Sequence[tuple[int, int]],
    windows: Sequence[tuple[int, int]], clip_len: int | None, workers: int | None = None, clip_frames: str = "float",
) -> Iterator[Clip]:
    """Clips of recorded frames: ``positions`` = (sampled position, source index) of every frame
    the ``windows`` (start, valid) hold, in order (a frame manifest's); only resize/crop of ``pp`` apply."""
    uint8 = _check_clip_frames(clip_frames)
    resizer = FrameResizer(pp.size, pp.crop, pp.resize)
    resizer.check(source.height, source.width, source.path)
    raw = select_frames(ReadAhead(iter(source.frames())), [i for _, i in positions], source.path)
    frames = resized_frames(raw, source, None if uint8 else resizer, None, workers or default_workers(clip_frames),
                            yuv=clip_frames.startswith("yuv"))
    yield from recorded_clips(
        frames, [p for p, _ in positions], windows, clip_len, video_id=video_id, source=source.path,
        source_fps=float(source.fps) if source.fps else None, fps=output_fps(source.fps, pp),
        source_size=(source.width, source.height), pin=_pinned(clip_frames),
    )


def decode_clips(
    path: str | Path, pp: Preprocess, video_id: str | None = None, workers: int | None = None,
    frame_range: tuple[int, int | None] | None = None, *, timeout_s: float | None = None, clip_frames: str = "float",
    **yuv: Any,
) -> Iterator[Clip]:
    """Clips of one video file; ``yuv`` = width/height/source_fps/matrix for raw files.

    ``timeout_s`` fails a container file that spends longer decoding (see :func:`open_av`);
    ``clip_frames``: see ``CLIP_FRAMES``.
    """
    _check_clip_frames(clip_frames)  # before the file is opened
    src = open_video(path, timeout_s, **yuv)
    yield from frames_to_clips(src, pp, video_id or Path(path).name, workers, frame_range, clip_frames)
