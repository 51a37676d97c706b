"""Frame-rate sampling over a stream of frames: the two named modes of ``Preprocess.sampling``.

* ``stride``: keep every ``round(source_fps / fps)``-th frame starting with the first, never
  duplicating frames (what the VidTok evaluator does; Python ``round``, so 2.5 -> 2).
* ``timestamps``: for each target time ``k / fps`` (k = 0, 1, ...) before the end of the
  video, the frame whose start time is nearest (ties go to the earlier frame). Frames repeat
  when ``fps`` exceeds the source rate. Times are exact fractions, so ties are exact.

Both work on lazy items (e.g. undecoded-to-RGB PyAV frames) so only kept frames are converted.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


def as_fraction(x: float | int | Fraction) -> Fraction:
    """An exact rate from a float like 29.97 or a PyAV Fraction."""
    if isinstance(x, Fraction):
        return x
    return Fraction(str(x)) if isinstance(x, float) else Fraction(x)


def stride_step(source_fps: float, fps: float | None) -> int:
    """The stride-mode step: round(source_fps / fps), at least 1; 1 when fps is None (native)."""
    if fps is None:
        return 1
    return max(1, round(float(source_fps) / float(fps)))


def sample_stride(frames: Iterable[T], step: int) -> Iterator[T]:
    """Frames 0, step, 2*step, ..."""
    for i, f in enumerate(frames):
        if i % step == 0:
            yield f


def sample_timestamps(
    frames: Iterable[tuple[Fraction, T]], fps: float | Fraction, frame_duration: Fraction
) -> Iterator[T]:
    """Nearest frame to each target time k/fps, from ``(start_time, item)`` pairs in decode order.

    Times are taken relative to the first frame. The video ends ``frame_duration`` after the
    last frame's start; targets at or beyond the end are not produced. One frame is held
    back (undecoded to RGB) until the next one shows which is nearer.
    """
    rate = as_fraction(fps)
    k = 0
    target = Fraction(0)
    prev: tuple[Fraction, T] | None = None
    t0: Fraction | None = None
    for t, item in frames:
        if t0 is None:
            t0 = t
        t = t - t0
        if prev is not None and t <= prev[0]:
            continue  # non-increasing timestamp (e.g. a duplicate); keep the first
        if prev is not None:
            # targets in [prev start, t): the nearer of the two frames (ties: the earlier);
            # later frames start after t, so they cannot be nearer
            while target < t:
                yield prev[1] if target - prev[0] <= t - target else item
                k += 1
                target = k / rate
        prev = (t, item)
    if prev is None:
        return
    end = prev[0] + frame_duration
    while target < end:
        yield prev[1]
        k += 1
        target = k / rate
