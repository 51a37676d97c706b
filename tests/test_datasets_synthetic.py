"""The synthetic set: deterministic, moving, a scene cut, and the common preprocessing path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vidtok_bench import create_dataset
from vidtok_bench.errors import ConfigError

SMALL = dict(num_videos=2, num_frames=12, height=72, width=96, size=64, clip_len=5)


def test_defaults_from_conf_and_clip_layout():
    ds = create_dataset("synthetic")
    assert (ds.num_videos, ds.num_frames, ds.height, ds.width, ds.source_fps, ds.seed) == (4, 48, 288, 352, 30.0, 0)
    ds = create_dataset("synthetic", **SMALL)
    vids = ds.videos()
    assert [v.id for v in vids] == ["synthetic_000", "synthetic_001"]
    clips = list(ds.clips(vids[0]))
    assert [(c.start, c.valid) for c in clips] == [(0, 5), (5, 5), (10, 2)]
    assert clips[0].frames.shape == (3, 5, 64, 64) and clips[0].frames.dtype == torch.float32
    assert float(clips[0].frames.min()) >= -1.0 - 1e-6 and float(clips[0].frames.max()) <= 1.0 + 1e-6


def test_deterministic_and_seeded():
    a = [c.frames for c in create_dataset("synthetic", **SMALL).clips(create_dataset("synthetic", **SMALL).videos()[1])]
    b = [c.frames for c in create_dataset("synthetic", **SMALL).clips(create_dataset("synthetic", **SMALL).videos()[1])]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    other = create_dataset("synthetic", seed=1, **SMALL)
    c = [c.frames for c in other.clips(other.videos()[1])]
    assert not torch.equal(a[0], c[0])


def test_motion_and_scene_cut():
    ds = create_dataset("synthetic", num_videos=1, num_frames=16, height=72, width=96)
    src = ds.source(ds.videos()[0])
    frames = [src.to_rgb(i).astype(np.float64) for i in range(16)]
    diffs = [np.abs(frames[i + 1] - frames[i]).mean() for i in range(15)]
    assert all(d > 0.5 for d in diffs)  # every frame moves
    cut = 7  # between frame 7 and 8 (num_frames // 2)
    assert diffs[cut] > 2 * max(diffs[:cut] + diffs[cut + 1 :])  # the cut is the biggest change
    assert frames[0].dtype == np.float64 and src.to_rgb(0).dtype == np.uint8 and src.to_rgb(0).shape == (72, 96, 3)


def test_fps_sampling_applies():
    ds = create_dataset("synthetic", num_videos=1, num_frames=30, height=40, width=40, size=32, clip_len="whole", fps=10)
    (clip,) = list(ds.clips(ds.videos()[0]))
    assert clip.valid == 10 and clip.fps == 10.0 and clip.source_fps == 30.0  # every 3rd frame


@pytest.mark.parametrize("bad", [{"num_frames": 0}, {"height": -3}, {"bogus": 1}, {"fps": -1}])
def test_bad_options(bad):
    with pytest.raises(ConfigError):
        create_dataset("synthetic", **bad)
