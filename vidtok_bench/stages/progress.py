"""Progress: a bar that moves per clip with an ETA, and the running metric means it shows."""
from __future__ import annotations

from typing import Any

from ..results import VideoRecord


class ClipProgress:
    """A progress bar that moves per clip, with an ETA: the total is re-estimated after each video from
    the clips per video seen so far (the number of clips a video gives is known only once decoded)."""

    def __init__(self, tqdm: Any, videos: int, finished: Any, disable: bool, desc: str):
        finished = list(finished)
        self.videos, self.seen_videos = videos, len(finished)
        self.seen_clips = sum(len(v.clips) for v in finished)
        self.current = 0
        self.bar = tqdm(total=None, initial=self.seen_clips, unit="clip", disable=disable, desc=desc)
        self._estimate()

    def _estimate(self) -> None:
        if self.seen_videos:
            per_video = self.seen_clips / self.seen_videos
            self.bar.total = max(self.bar.n, round(self.seen_clips + (self.videos - self.seen_videos) * per_video))

    def clips_done(self, n: int, postfix: str) -> None:
        self.current += n
        self.bar.update(n)
        self.bar.set_postfix_str(postfix, refresh=False)

    def video_done(self, video: VideoRecord, postfix: str) -> None:
        self.seen_videos += 1
        self.seen_clips += self.current
        self.current = 0
        self._estimate()
        self.bar.set_postfix_str(f"{self.seen_videos}/{self.videos} videos {postfix}")

    def close(self) -> None:
        self.bar.close()


class RunningMeans:
    """Running per-statistic means for the progress bar, updated one finished video at a time."""

    def __init__(self, videos: Any = ()):
        self.sums: dict[str, list[float]] = {}
        for v in videos:
            self.add(v)

    def add(self, video: VideoRecord) -> str:
        for c in video.clips:
            for name, vals in c.stats.items():
                acc = self.sums.setdefault(name, [0.0, 0])
                acc[0] += sum(x for x in vals if x is not None)
                acc[1] += len(vals)
        return self.text()

    def text(self) -> str:
        return " ".join(f"{n}={s / k:.4g}" for n, (s, k) in self.sums.items() if k)
