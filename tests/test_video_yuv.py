"""Raw YUV 4:2:0 reader: names, sizes, colour conversion against FFmpeg's, bad files."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok_bench.data import Preprocess
from vidtok_bench.errors import VideoError
from vidtok_bench.video.decode import decode_clips
from vidtok_bench.video.yuv import (
    iter_yuv_frames,
    parse_yuv_name,
    probe_yuv,
    rgb_to_yuv420,
    yuv420_frame_bytes,
)


def decoded_planes(path, n):
    """The decoder's own yuv420p planes and FFmpeg's RGB (BT.709 from the stream tags) of n frames."""
    raw, rgb = b"", []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i == n:
                break
            assert f.format.name == "yuv420p" and f.colorspace == 1  # BT.709-tagged source
            raw += f.to_ndarray().tobytes()  # Y, U, V planes, (1.5H, W)
            rgb.append(f.to_ndarray(format="rgb24"))
    return raw, rgb


@pytest.mark.parametrize("name", ["squirrel_1280x720.mp4", "smpte_bars_1920x1080.mp4"])
def test_reader_matches_ffmpeg_on_real_yuv(shared_videos, tmp_path, name):
    raw, rgb = decoded_planes(shared_videos / name, 3)
    h, w = rgb[0].shape[:2]
    p = tmp_path / f"clip_{w}x{h}_25.yuv"
    p.write_bytes(raw)
    info = probe_yuv(p)
    assert (info.width, info.height, info.fps, info.num_frames) == (w, h, Fraction(25), 3)
    ours = list(iter_yuv_frames(p, info))
    assert len(ours) == 3
    for a, b in zip(ours, rgb):
        d = np.abs(a.astype(int) - b.astype(int))
        # FFmpeg's fixed-point conversion and chroma interpolation differ from ours by a few levels
        assert d.mean() < 1.5 and d.max() <= 4, (d.mean(), d.max())


def test_rgb_roundtrip_close_to_source(shared_videos, tmp_path):
    _, rgb = decoded_planes(shared_videos / "squirrel_1280x720.mp4", 2)
    p = tmp_path / "rt.yuv"
    p.write_bytes(b"".join(rgb_to_yuv420(f) for f in rgb))
    got = list(iter_yuv_frames(p, probe_yuv(p, 1280, 720, 25)))
    for a, b in zip(got, rgb):
        d = np.abs(a.astype(int) - b.astype(int))
        assert d.mean() < 3.0  # only chroma subsampling loses detail


def test_pipeline_reads_yuv_like_the_mp4(shared_videos, tmp_path):
    raw, _ = decoded_planes(shared_videos / "squirrel_1280x720.mp4", 4)
    p = tmp_path / "squirrel_1280x720_25.yuv"
    p.write_bytes(raw)
    pp = Preprocess(size=64, clip_len=4, fps=25)
    (a,) = list(decode_clips(p, pp))
    (b,) = list(decode_clips(shared_videos / "squirrel_1280x720.mp4", Preprocess(size=64, clip_len=4, fps=25, max_frames=4)))
    assert a.frames.shape == b.frames.shape == (3, 4, 64, 64) and a.source_fps == 25.0
    assert float((a.frames - b.frames).abs().mean()) < 0.01


@pytest.mark.parametrize(
    "name,expected",
    [
        ("videoSRC01_1920x1080_30.yuv", (1920, 1080, Fraction(30))),
        ("Beauty_3840x2160_120fps_420_8bit_YUV.yuv", (3840, 2160, Fraction(120))),
        ("dir/x_352x288_29.97.yuv", (352, 288, Fraction("29.97"))),
        ("videoSRC01.yuv", None),
        ("clip_1920x1080_30.mp4", None),
    ],
)
def test_parse_name(name, expected):
    assert parse_yuv_name(name) == expected


@settings(max_examples=50, deadline=None)
@given(w=st.integers(1, 4096), h=st.integers(1, 4096))
def test_frame_bytes(w, h):
    assert yuv420_frame_bytes(w, h) == w * h + 2 * (-(-w // 2)) * (-(-h // 2))
    if w % 2 == 0 and h % 2 == 0:
        assert yuv420_frame_bytes(w, h) == w * h * 3 // 2


def test_bad_size_is_an_error(tmp_path):
    p = tmp_path / "bad_64x48_30.yuv"
    p.write_bytes(bytes(64 * 48 * 3 // 2 * 2 + 100))
    with pytest.raises(VideoError, match=r"bad_64x48_30.yuv: file size 9316 is not a multiple of the 64x48 YUV 4:2:0 frame size 4608"):
        probe_yuv(p)


def test_unknown_size_and_empty_file(tmp_path):
    p = tmp_path / "noname.yuv"
    p.write_bytes(bytes(100))
    with pytest.raises(VideoError, match="noname.yuv: raw YUV size unknown"):
        list(decode_clips(p, Preprocess()))
    e = tmp_path / "empty_64x48_30.yuv"
    e.write_bytes(b"")
    with pytest.raises(VideoError, match="empty_64x48_30.yuv: video has no frames"):
        list(decode_clips(e, Preprocess(size=32)))


def test_explicit_size_overrides_name(tmp_path):
    p = tmp_path / "x.yuv"
    p.write_bytes(bytes(yuv420_frame_bytes(32, 16) * 5))
    (clip,) = list(decode_clips(p, Preprocess(size=16, clip_len=None, fps=None), width=32, height=16, source_fps=24))
    assert clip.frames.shape == (3, 5, 16, 16) and clip.source_fps == 24.0


def test_high_bit_depth_names_are_refused(tmp_path):
    p = tmp_path / "Beauty_64x48_120fps_420_10bit_YUV.yuv"
    p.write_bytes(bytes(yuv420_frame_bytes(64, 48) * 4))  # a 2-byte-per-sample file is a "multiple" too
    with pytest.raises(VideoError, match="10-bit raw YUV is not supported"):
        probe_yuv(p)
    ok = tmp_path / "Beauty_64x48_120fps_420_8bit_YUV.yuv"
    ok.write_bytes(bytes(yuv420_frame_bytes(64, 48) * 2))
    assert probe_yuv(ok).num_frames == 2 and probe_yuv(ok).fps == 120
