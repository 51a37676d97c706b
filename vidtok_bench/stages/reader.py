"""Reading: background threads decode videos into batches of clips while the model runs.

``workers`` threads each decode one video at a time (PyAV, swscale and torch release the GIL, so
videos decode in parallel); events still come out in the dataset's order, video after video, so
nothing downstream depends on the number of workers. At most ``workers`` videos are open at once
and each holds at most ``prefetch`` batches queued ahead of the consumer (plus the batch being put
and the one being built): host memory stays bounded by ``workers * (prefetch + 2)`` batches however
long or short the videos are (a test counts them).
"""
from __future__ import annotations

import contextlib
import queue
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


class ClipReader:
    """Iterate over events for ``videos``; ``workers`` threads decode up to ``workers`` videos at once,
    each ``prefetch`` batches ahead of the consumer."""

    def __init__(self, dataset: Dataset, videos: list[VideoRef], batch_size: int = 1, prefetch: int = 4,
                 workers: int = 1):
        self.dataset, self.videos = dataset, videos
        self.batch_size = batch_size
        self.prefetch = max(1, prefetch)
        self.workers = max(1, min(workers, len(videos) or 1))
        self._queues: list["queue.Queue[Event]"] = [queue.Queue(maxsize=self.prefetch) for _ in videos]
        self._next = 0  # next video a worker takes
        self._lock = threading.Lock()
        # one slot per open video: a worker takes a slot before it starts a video, the consumer gives
        # it back when it has read that video's last event
        self._slots = threading.Semaphore(self.workers)
        self._stop = threading.Event()

    def _wait(self, op) -> None:
        """Run a blocking ``op(timeout)`` until it succeeds or the consumer stops."""
        while not self._stop.is_set():
            try:
                if op(0.5) is not False:
                    return
            except queue.Full:
                continue
        raise _Stopped

    def _read_video(self, k: int) -> None:
        video, q = self.videos[k], self._queues[k]

        def put(ev: Event) -> None:
            self._wait(lambda t: q.put(ev, timeout=t))

        clips: Any = None
        try:
            clips = iter(self.dataset.clips(video))
            pending: list[Clip] = []
            for clip in clips:
                if pending and (len(pending) >= self.batch_size or pending[0].frames.shape != clip.frames.shape):
                    put(Event("batch", video, pending))
                    pending = []
                pending.append(clip)
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
    def _get(q: "queue.Queue[Event]", threads: list[threading.Thread]) -> Event:
        while True:
            try:
                return q.get(timeout=1.0)
            except queue.Empty:
                if not any(t.is_alive() for t in threads) and q.empty():
                    raise RuntimeError("the clip reader's threads ended without finishing a video") from None

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
                with contextlib.suppress(queue.Empty):
                    while True:
                        q.get_nowait()
            for t in threads:
                t.join(timeout=5)
