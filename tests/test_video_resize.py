"""The resize filter is part of the VidTok protocol: prove ours equals torchvision v2 on real frames."""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF
from torchvision.transforms.v2.functional._geometry import (
    _center_crop_compute_crop_anchor,
    _compute_resized_output_size,
)

from vidtok_bench.errors import VideoError
from vidtok_bench.video.resize import FrameResizer, center_crop_anchor, resized_size


def first_frames(path, n=3, step=10):
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i % step == 0:
                out.append(f.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    return out


def vidtok_reference(frames_uint8: list[np.ndarray], size: int) -> torch.Tensor:
    """What the VidTok evaluator does: uint8 video -> float/255 -> v2.Resize(antialias) -> CenterCrop, (T,3,h,w)."""
    video = torch.from_numpy(np.stack(frames_uint8)).permute(0, 3, 1, 2).float() / 255.0
    return v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])(video)


@pytest.mark.parametrize(
    "name,size",
    [
        ("smpte_bars_1920x1080.mp4", 256),
        ("squirrel_1280x720.mp4", 256),
        ("sintel_854x480.mp4", 256),
        ("kinetics_flipping_pancake_426x240.mkv", 256),  # upsampling: 240 -> 256
        ("kinetics_arm_wrestling_340x256.mp4", 256),  # short side already 256: no resize, only crop
        ("tears_of_steel_640x360.mp4", 224),
    ],
)
def test_equals_torchvision_v2_on_real_frames(shared_videos, name, size):
    frames = first_frames(shared_videos / name)
    ref = vidtok_reference(frames, size)
    ours = torch.stack([FrameResizer(size, "center", "bilinear_antialias")(f) for f in frames])
    assert ours.dtype == torch.float32 and ours.shape == ref.shape == (len(frames), 3, size, size)
    assert torch.equal(ours, ref), float((ours - ref).abs().max())


def test_no_crop_keeps_aspect_and_equals_torchvision(shared_videos):
    (f,) = first_frames(shared_videos / "smpte_bars_1920x1080.mp4", n=1)
    ours = FrameResizer(256, "none")(f)
    ref = TF.resize(torch.from_numpy(f).permute(2, 0, 1).float() / 255.0, [256], antialias=True)
    assert ours.shape == (3, 256, 455)
    assert torch.equal(ours, ref)


def test_bicubic_is_a_different_filter(shared_videos):
    (f,) = first_frames(shared_videos / "squirrel_1280x720.mp4", n=1)
    bl = FrameResizer(256, "center", "bilinear_antialias")(f)
    bc = FrameResizer(256, "center", "bicubic_antialias")(f)
    assert bc.shape == bl.shape and not torch.equal(bc, bl)
    assert float(bc.min()) >= 0.0 and float(bc.max()) <= 1.0


def test_native_size_keeps_values():
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = FrameResizer(None, "center")(rgb)
    assert torch.equal(out, torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)


def test_crop_only_rejects_small_frames():
    r = FrameResizer(256, "center", "none")
    with pytest.raises(VideoError, match=r"426x240, smaller than the crop 256x256"):
        r.check(240, 426, "clip.mkv")
    with pytest.raises(VideoError, match="smaller than the crop"):
        r(np.zeros((240, 426, 3), np.uint8))
    out = r(np.zeros((300, 400, 3), np.uint8))
    assert out.shape == (3, 256, 256)


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 4000), w=st.integers(1, 4000), size=st.integers(1, 1100))
def test_output_size_and_crop_anchor_match_torchvision(h, w, size):
    assert list(resized_size(h, w, size)) == _compute_resized_output_size((h, w), size=[size])
    rh, rw = resized_size(h, w, size)
    assert center_crop_anchor(rh, rw, size, size) == _center_crop_compute_crop_anchor(size, size, rh, rw)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(8, 64), w=st.integers(8, 64), size=st.integers(4, 48), seed=st.integers(0, 2**16))
def test_random_frames_match_torchvision(h, w, size, seed):
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ref = vidtok_reference([rgb], size)[0]
    ours = FrameResizer(size, "center")(rgb)
    assert torch.equal(ours, ref)
