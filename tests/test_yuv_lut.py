"""YUV 4:2:0 -> RGB by table (video.yuv_lut): bit-identical to the CPU conversion it stands in for, or not used."""
from __future__ import annotations

import dataclasses

import av
import numpy as np
import pytest
import torch
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok_bench.data import Preprocess
from vidtok_bench.errors import VideoError
from vidtok_bench.video.clips import planes_digest
from vidtok_bench.video.decode import av_frame_to_rgb, av_planes, frames_to_clips, open_av, yuv_table
from vidtok_bench.video.yuv import yuv420_to_rgb
from vidtok_bench.video.yuv_lut import Yuv420Lut, pack, packed_size


def first_frames(path, n=3):
    with av.open(str(path)) as c:
        return [f for _, f in zip(range(n), c.decode(video=0))]


def test_the_table_reproduces_ffmpeg_on_every_shared_video(shared_videos):
    """Every shared video (BT.601 and BT.709, limited range, line padding, odd chroma widths): the table built from
    swscale turns each frame's planes into exactly ``to_ndarray(format='rgb24')``'s bytes, frame after frame."""
    paths = sorted(p for p in shared_videos.iterdir() if p.suffix in (".mp4", ".mkv"))
    assert len(paths) >= 7
    for path in paths:
        src = open_av(path)
        frames = first_frames(path)
        lut = yuv_table(src, frames[0])
        assert lut is not None, path.name
        for f in frames:
            planes = av_planes(f)
            got = lut.to_rgb(torch.from_numpy(pack(planes)).unsqueeze(0), f.height, f.width)[0]
            assert np.array_equal(got.numpy(), f.to_ndarray(format="rgb24")), path.name


def test_plane_digests_cover_the_visible_bytes_only(shared_videos):
    """kinetics_arm_wrestling (340 wide) decodes with 384-byte lines: the digest is of the 340 visible bytes per
    row, i.e. of PyAV's own unpadded yuv420p array, whatever the decoder's padding holds."""
    (f,) = first_frames(shared_videos / "kinetics_arm_wrestling_340x256.mp4", 1)
    assert f.planes[0].line_size > f.width
    want = xxhash.xxh3_128(f.to_ndarray().tobytes()).digest()  # (H * 3/2, W): Y then U then V, no padding
    assert planes_digest(av_planes(f)) == want


@pytest.fixture(scope="module")
def bt709_table():
    return Yuv420Lut.build(lambda y, u, v: yuv420_to_rgb(y, u, v, "bt709"), 16)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 12), w=st.integers(1, 12), t=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_the_table_of_the_raw_yuv_formula_equals_the_formula(bt709_table, h, w, t, seed):
    """The raw .yuv converter is one formula for every pixel: its table, applied to arbitrary even-sized planes (any
    frame count), gives the formula's bytes exactly."""
    h, w = 2 * h, 2 * w
    rng = np.random.default_rng(seed)
    planes = [(rng.integers(0, 256, (h, w), dtype=np.uint8), rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8),
               rng.integers(0, 256, (h // 2, w // 2), dtype=np.uint8)) for _ in range(t)]
    packed = torch.stack([torch.from_numpy(pack(p)) for p in planes])
    assert packed.shape == (t, packed_size(h, w))
    got = bt709_table.to_rgb(packed, h, w)
    for k, p in enumerate(planes):
        assert np.array_equal(got[k].numpy(), yuv420_to_rgb(*p, "bt709"))


def test_a_converter_that_depends_on_position_gets_no_table():
    """A converter whose result depends on where a pixel sits (here: its first column rounds otherwise) cannot be
    a table: the second pass, with every combination at another position, disagrees."""
    def uneven(y, u, v):
        rgb = yuv420_to_rgb(y, u, v)
        rgb[:, 0] = np.minimum(rgb[:, 0], 254)
        return rgb

    assert Yuv420Lut.build(uneven, 16) is None
    assert Yuv420Lut.build(yuv420_to_rgb, 15) is None  # odd widths are not tabulated


def test_to_rgb_refuses_other_layouts(bt709_table):
    with pytest.raises(ValueError, match=r"packed YUV 4:2:0 frames of 4x2 are uint8 \(T, 12\)"):
        bt709_table.to_rgb(torch.zeros(1, 13, dtype=torch.uint8), 2, 4)
    with pytest.raises(ValueError, match="uint8"):
        Yuv420Lut(np.zeros((16, 3), np.uint8))


def _clips(src, clip_frames):
    return list(frames_to_clips(src, Preprocess(size=64, clip_len=4, max_frames=8), "v", workers=2,
                                clip_frames=clip_frames))


def test_a_table_that_misses_the_real_frame_falls_back_to_rgb(shared_videos):
    """A table that passes its own checks but not the video's first real frame (here: built from the wrong colour
    matrix) is not used: the clips are RGB, with the same values and checksum as the CPU pipeline."""
    src = open_av(shared_videos / "tears_of_steel_640x360.mp4")
    wrong = dataclasses.replace(src.yuv, layout=lambda f: ("test-wrong-matrix", f.width),
                                converter=lambda f: lambda y, u, v: yuv420_to_rgb(y, u, v, "bt601"))
    src = dataclasses.replace(src, yuv=wrong)
    got, ref = _clips(src, "yuv"), _clips(src, "float")
    assert all(c.yuv is None and c.frames.shape[0] == 3 for c in got)
    assert got[-1].video_checksum == ref[-1].video_checksum is not None
    right = _clips(open_av(shared_videos / "tears_of_steel_640x360.mp4"), "yuv")
    assert all(c.yuv is not None and c.frames.shape[0] == 1 for c in right)
    assert right[-1].video_checksum == ref[-1].video_checksum


def test_a_layout_change_within_the_video_is_a_video_error(shared_videos):
    """Frames converted on the device all use the first frame's table: a frame of another colour space or size
    must not be converted with it (one-line VideoError naming the file)."""
    src = open_av(shared_videos / "tears_of_steel_640x360.mp4")
    seen = []

    def layout(f):
        seen.append(f)
        return ("av", "changes", len(seen) > 2)

    src = dataclasses.replace(src, yuv=dataclasses.replace(src.yuv, layout=layout))
    with pytest.raises(VideoError, match=r"tears_of_steel_640x360.mp4: the frame format, size or colour space changes"):
        _clips(src, "yuv")


def test_the_table_builds_from_ffmpeg_at_the_videos_width(shared_videos):
    """The synthetic frames that tabulate swscale carry the source's format, colour space and range (BT.709
    limited here): without them swscale would use BT.601 and the table would miss."""
    (f,) = first_frames(shared_videos / "smpte_bars_1920x1080.mp4", 1)
    assert (int(f.colorspace), int(f.color_range)) == (1, 1)
    lut = yuv_table(open_av(shared_videos / "smpte_bars_1920x1080.mp4"), f)
    assert lut is not None
    got = lut.to_rgb(torch.from_numpy(pack(av_planes(f))).unsqueeze(0), f.height, f.width)[0].numpy()
    assert np.array_equal(got, av_frame_to_rgb(f))
