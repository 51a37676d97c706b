"""Deterministic, procedurally generated videos with real motion; needs no download.

Each video is two shots separated by a hard scene cut half-way: the first pans a virtual
camera back and forth over a large procedural texture (smooth colour fields, oriented stripes, a
checkerboard, fine grain), the second zooms in and out of a different texture; three objects (disc,
square, ring) move and bounce over both shots. Everything comes from a numpy generator seeded
with (seed, video index) and float64 arithmetic, so the same parameters give the same uint8
frames on every machine. Frames are generated one at a time as uint8 RGB at the source size
and then take exactly the path decoded videos take (fps sampling, resize, clips).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterator

import numpy as np

from vidtok_bench.data import Clip, Dataset, VideoRef
from vidtok_bench.registry import register_dataset
from vidtok_bench.video.decode import FrameSource, default_workers, frames_to_clips

from ._common import check_positive


def _bilinear(img: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample img (H, W, C) at the grid ys x xs (pixel-centre coordinates), edges clamped."""
    h, w = img.shape[:2]
    ys = np.clip(ys, 0, h - 1)
    xs = np.clip(xs, 0, w - 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    lo, hi = int(x0.min()), int(x1.max()) + 1  # only the columns the grid touches
    sub = img[:, lo:hi]
    rows = sub[y0] * (1 - fy) + sub[y1] * fy  # separable: rows first, then columns
    return rows[:, x0 - lo] * (1 - fx) + rows[:, x1 - lo] * fx


def make_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A float64 (h, w, 3) texture in [0, 1] with detail at several scales."""
    coarse = rng.random((max(2, h // 48), max(2, w // 48), 3))
    base = _bilinear(coarse, np.linspace(0, coarse.shape[0] - 1, h), np.linspace(0, coarse.shape[1] - 1, w))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    theta = rng.uniform(0, np.pi)
    freq = rng.uniform(0.05, 0.2)
    stripes = 0.5 + 0.5 * np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy))
    tex = 0.6 * base + 0.25 * stripes[..., None] * rng.random(3)
    # a checkerboard patch: sharp edges that tokenizers find hard
    ch, cw = h // 4, w // 4
    y0, x0 = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
    cell = int(rng.integers(4, 12))
    checker = ((yy[y0 : y0 + ch, x0 : x0 + cw] // cell + xx[y0 : y0 + ch, x0 : x0 + cw] // cell) % 2)[..., None]
    tex[y0 : y0 + ch, x0 : x0 + cw] = 0.15 + 0.7 * checker
    tex += rng.normal(0, 0.03, tex.shape)  # film grain
    return np.clip(tex, 0, 1)


class SyntheticVideo:
    """Frame generator of one synthetic video."""

    def __init__(self, seed: int, index: int, num_frames: int, height: int, width: int):
        rng = np.random.default_rng([seed, index])
        self.n, self.h, self.w = num_frames, height, width
        self.cut = num_frames // 2
        self.tex_a = make_texture(rng, 2 * height, 2 * width)
        self.tex_b = make_texture(rng, 2 * height, 2 * width)
        ang = rng.uniform(0, 2 * np.pi)
        self.pan_dir = np.array([np.sin(ang), np.cos(ang)])
        self.zoom_end = rng.uniform(1.4, 2.0)
        self.objects = []
        for kind in ("disc", "square", "ring"):
            r = rng.uniform(0.06, 0.12) * min(height, width)
            pos = np.array([rng.uniform(r, height - r), rng.uniform(r, width - r)])
            vel = rng.uniform(-1, 1, 2) * min(height, width) / 30.0
            self.objects.append((kind, r, pos, vel, rng.random(3)))

    def frame(self, i: int) -> np.ndarray:
        """uint8 (H, W, 3) frame ``i``."""
        h, w = self.h, self.w
        ys0 = np.arange(h) - (h - 1) / 2
        xs0 = np.arange(w) - (w - 1) / 2
        # motion speed per frame does not depend on the video's length: the camera pans back
        # and forth (period 216 frames, up to 45% of the frame) and zooms in and out (240 frames)
        if i < self.cut:  # shot 1: pan across texture A
            u = np.sin(2 * np.pi * i / 216)
            cy, cx = np.array([h, w], float) + self.pan_dir * (0.45 * u * np.array([h, w]))
            img = _bilinear(self.tex_a, cy + ys0, cx + xs0)
        else:  # shot 2 (after the cut): zoom into texture B
            u = (1 - np.cos(2 * np.pi * (i - self.cut) / 240)) / 2
            s = 1.0 + (self.zoom_end - 1.0) * u
            img = _bilinear(self.tex_b, h + ys0 / s, w + xs0 / s)
        yy, xx = np.ogrid[0:h, 0:w]
        for kind, r, pos, vel, colour in self.objects:
            p = pos + vel * i
            lo = np.array([r, r])
            span = np.array([h, w]) - 2 * r
            q = np.abs(np.mod(p - lo, 2 * span) - span)  # bounce between the walls
            y, x = span - q + lo
            dy, dx = yy - y, xx - x
            if kind == "square":
                mask = (np.abs(dy) <= r) & (np.abs(dx) <= r)
            else:
                d2 = dy * dy + dx * dx
                mask = d2 <= r * r if kind == "disc" else (d2 <= r * r) & (d2 >= (0.6 * r) ** 2)
            img[mask] = colour
        return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


@register_dataset("synthetic")
class SyntheticDataset(Dataset):
    """``num_videos`` videos of ``num_frames`` frames at ``height`` x ``width``, ``source_fps``."""

    def __init__(
        self,
        name: str | None = None,
        num_videos: int = 4,
        num_frames: int = 48,
        height: int = 288,
        width: int = 352,
        source_fps: float = 30,
        seed: int = 0,
        workers: int | None = None,
        **preprocess: Any,
    ):
        super().__init__(name=name, **preprocess)
        self.num_videos = check_positive(self.name, "num_videos", num_videos)
        self.num_frames = check_positive(self.name, "num_frames", num_frames)
        self.height = check_positive(self.name, "height", height)
        self.width = check_positive(self.name, "width", width)
        self.source_fps = check_positive(self.name, "source_fps", source_fps, float)
        self.seed = int(seed or 0)
        self.workers = check_positive(self.name, "workers", workers) or min(2, default_workers())

    def videos(self) -> list[VideoRef]:
        return [
            VideoRef(
                id=f"synthetic_{i:03d}",
                meta={"num_frames": self.num_frames, "height": self.height, "width": self.width,
                      "source_fps": self.source_fps, "seed": self.seed, "index": i},
            )
            for i in range(self.num_videos)
        ]

    def source(self, video: VideoRef) -> FrameSource:
        """The video's lazy uint8 frame stream (used by clips and by tests)."""
        index = int(video.meta.get("index", int(video.id.rsplit("_", 1)[-1])))
        fps = Fraction(str(self.source_fps))

        gen = SyntheticVideo(self.seed, index, self.num_frames, self.height, self.width)

        def frames() -> Iterator[tuple[Fraction, Any]]:
            # items are frame numbers: only the frames that sampling keeps get rendered
            for i in range(self.num_frames):
                yield Fraction(i) / fps, i

        return FrameSource(f"synthetic:{video.id}", self.width, self.height, fps, frames, gen.frame, self.num_frames)

    def clips(self, video: VideoRef) -> Iterator[Clip]:
        return frames_to_clips(self.source(video), self.preprocess, video.id, self.workers, clip_frames=self.clip_frames)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "num_videos": self.num_videos, "num_frames": self.num_frames,
                "height": self.height, "width": self.width, "source_fps": self.source_fps, "seed": self.seed}
