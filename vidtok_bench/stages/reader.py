"""Reading: background threads decode videos into batches of clips while the model runs.

``workers`` threads each decode one video at a time (PyAV, swscale and torch release the GIL, so
videos decode in parallel); events still come out in the dataset's order, video after video, so
nothing downstream depends on the number of workers. At most ``workers`` videos are open at once
and each holds at most ``prefetch`` batches (and ``PREFETCH_BYTES``, always one batch) queued ahead of
the consumer; a worker starts the next batch only when the queue has room for it. Host memory stays
bounded by ``workers * (prefetch + 1)`` batches however long or short the videos are (a test counts them).
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any, Iterator

from ..data import Clip, Dataset, VideoRef
from ..errors import BenchError


@dataclass
class Event:
    """``batch`` (clips of one video, equal shapes), then ``done`` or ``failed`` (with ``error``) per video."""

    kind: str
    video: VideoRef
    clips: list[Clip] = field(default_factory=list)
    error: str | None = None


class _Stopped(Exception):
    """The consumer went away: a worker stops reading."""


#: bytes of clip frames one worker may queue ahead (at least one batch is always admitted): with uint8
#: 1080p clips (preprocess_on=device, ~106 MB per 17-frame clip) this, not ``prefetch``, is the bound
PREFETCH_BYTES = 192 << 20


def _batch_key(clip: Clip) -> tuple:
    """Clips batch together when their frames stack: same shape, and packed YUV clips also the same size."""
    return tuple(clip.frames.shape), clip.source_size if clip.yuv is not None else None


def _nbytes(ev: Event) -> int:
    return sum(c.frames.nelement() * c.frames.element_size() for c in ev.clips)


class _EventQueue:
    """One video's events: at most ``maxsize`` events and ``maxbytes`` of frames queued (one always fits)."""

    def __init__(self, maxsize: int, maxbytes: int):
        self.maxsize, self.maxbytes = maxsize, maxbytes
        self._items: list[tuple[Event, int]] = []
        self._bytes = 0
        self._cond = threading.Condition()

    def _fits(self, size: int) -> bool:
        """Whether a batch of ``size`` bytes is admitted now (call holding the condition's lock)."""
        return not self._items or (len(self._items) < self.maxsize and self._bytes + size <= self.maxbytes)

    def put(self, ev: Event, timeout: float) -> bool:
        size = _nbytes(ev)
        with self._cond:
            if not self._cond.wait_for(lambda: self._fits(size), timeout):
                return False
            self._items.append((ev, size))
            self._bytes += size
            self._cond.notify_all()
            return True

    def wait_room(self, size: int, timeout: float) -> bool:
        """Wait until a batch of ``size`` bytes would be admitted (so a worker builds the next batch only
        when it can hand it over: it never holds a finished batch while the queue is full)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._fits(size), timeout)

    def get(self, timeout: float) -> Event | None:
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                return None
            ev, size = self._items.pop(0)
            self._bytes -= size
            self._cond.notify_all()
            return ev

    def clear(self) -> None:
        with self._cond:
            self._items.clear()
            self._bytes = 0
            self._cond.notify_all()


class ClipReader:
    """Iterate over events for ``videos``; ``workers`` threads decode up to ``workers`` videos at once,
    each ``prefetch`` batches ahead of the consumer."""

    def __init__(self, dataset: Dataset, videos: list[VideoRef], batch_size: int = 1, prefetch: int = 4,
                 workers: int = 1):
        self.dataset, self.videos = dataset, videos
        self.batch_size = batch_size
        self.prefetch = max(1, prefetch)
        self.workers = max(1, min(workers, len(videos) or 1))
        self._queues = [_EventQueue(self.prefetch, PREFETCH_BYTES) for _ in videos]
        self._next = 0  # next video a worker takes
        self._lock = threading.Lock()
        # one slot per open video: a worker takes a slot before it starts a video, the consumer gives
        # it back when it has read that video's last event
        self._slots = threading.Semaphore(self.workers)
        self._stop = threading.Event()

    def _wait(self, op) -> None:
        """Run a blocking ``op(timeout)`` until it returns True or the consumer stops."""
        while not self._stop.is_set():
            if op(0.5):
                return
        raise _Stopped

    def _read_video(self, k: int) -> None:
        video, q = self.videos[k], self._queues[k]

        last = 0  # bytes of the last batch: the size the next one will most likely have

        def put(ev: Event) -> None:
            nonlocal last
            last = _nbytes(ev)
            self._wait(lambda t: q.put(ev, timeout=t))

        clips: Any = None
        try:
            clips = iter(self.dataset.clips(video))
            pending: list[Clip] = []
            while True:
                if not pending:  # room first, then decode: a full queue stops the worker before the next batch
                    self._wait(lambda t: q.wait_room(last, timeout=t))
                clip = next(clips, None)
                if clip is None:
                    break
                if pending and _batch_key(pending[0]) != _batch_key(clip):
                    put(Event("batch", video, pending))
                    pending = []
                pending.append(clip)
                if len(pending) >= self.batch_size:  # a full batch goes at once: no clip is held back
                    put(Event("batch", video, pending))
                    pending = []
            if pending:
                put(Event("batch", video, pending))
            put(Event("done", video))
        except _Stopped:
            close = getattr(clips, "close", None)
            if close is not None:  # a decoder stopped early releases its file and threads now
                close()
            raise
        except BenchError as exc:
            put(Event("failed", video, error=str(exc)))
        except Exception as exc:  # a decoder error must not end the run
            put(Event("failed", video, error=f"{video.path or video.id}: {type(exc).__name__}: {exc}"))

    def _work(self) -> None:
        with contextlib.suppress(_Stopped):
            while True:
                self._wait(lambda t: self._slots.acquire(timeout=t))
                with self._lock:
                    k, self._next = self._next, self._next + 1
                if k >= len(self.videos):
                    self._slots.release()
                    return
                self._read_video(k)

    @staticmethod
    def _get(q: _EventQueue, threads: list[threading.Thread]) -> Event:
        while True:
            ev = q.get(timeout=1.0)
            if ev is not None:
                return ev
            if not any(t.is_alive() for t in threads):
                ev = q.get(timeout=0)
                if ev is None:
                    raise RuntimeError("the clip reader's threads ended without finishing a video")
                return ev

    def __iter__(self) -> Iterator[Event]:
        threads = [threading.Thread(target=self._work, daemon=True, name=f"vidtok-bench-reader-{i}")
                   for i in range(self.workers)]
        for t in threads:
            t.start()
        try:
            for q in self._queues:
                while True:
                    ev = self._get(q, threads)
                    yield ev
                    if ev.kind != "batch":
                        break
                self._slots.release()
        finally:
            self._stop.set()
            for q in self._queues:
                q.clear()
            for t in threads:
                t.join(timeout=5)
