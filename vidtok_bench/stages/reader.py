"""Reading: a background thread decodes videos into batches of clips while the model runs."""
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


_END = object()


class ClipReader:
    """Iterate over events for ``videos``; decoding runs ``prefetch`` batches ahead in a thread."""

    def __init__(self, dataset: Dataset, videos: list[VideoRef], batch_size: int = 1, prefetch: int = 4):
        self.dataset, self.videos = dataset, videos
        self.batch_size = batch_size
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=max(1, prefetch))
        self._stop = threading.Event()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _read_video(self, video: VideoRef) -> bool:
        pending: list[Clip] = []
        for clip in self.dataset.clips(video):
            if pending and (len(pending) >= self.batch_size or pending[0].frames.shape != clip.frames.shape):
                if not self._put(Event("batch", video, pending)):
                    return False
                pending = []
            pending.append(clip)
        return (not pending or self._put(Event("batch", video, pending))) and self._put(Event("done", video))

    def _produce(self) -> None:
        try:
            for video in self.videos:
                try:
                    if not self._read_video(video):
                        return
                except BenchError as exc:
                    self._put(Event("failed", video, error=str(exc)))
                except Exception as exc:  # a decoder error must not end the run
                    self._put(Event("failed", video, error=f"{video.path or video.id}: {type(exc).__name__}: {exc}"))
        finally:
            self._put(_END)

    def __iter__(self) -> Iterator[Event]:
        thread = threading.Thread(target=self._produce, daemon=True, name="vidtok-bench-reader")
        thread.start()
        try:
            while (item := self._queue.get()) is not _END:
                yield item
        finally:
            self._stop.set()
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
            thread.join(timeout=5)
