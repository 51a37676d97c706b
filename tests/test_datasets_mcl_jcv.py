"""mcl_jcv: file discovery (raw YUV or mp4), names, and the message when it is absent."""
from __future__ import annotations

import os

import pytest

from vidtok_bench import create_dataset
from vidtok_bench.errors import DatasetError, VideoError
from vidtok_bench.video.yuv import yuv420_frame_bytes


def test_absent_root_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError) as e:
        create_dataset("mcl_jcv", root=str(tmp_path / "MCL-JCV")).videos()
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "MCL-JCV") in msg
    assert "University of Southern California" in msg and "dataset.root=DIR" in msg
    with pytest.raises(DatasetError, match="mcl_jcv needs dataset.root"):
        create_dataset("mcl_jcv")


def test_empty_root(tmp_path):
    (tmp_path / "other.mp4").write_bytes(b"")
    with pytest.raises(DatasetError, match=f"no MCL-JCV source videos .* under {tmp_path}"):
        create_dataset("mcl_jcv", root=str(tmp_path)).videos()


def test_finds_yuv_and_mp4_prefers_yuv(tmp_path, shared_videos):
    fb = yuv420_frame_bytes(64, 36)
    (tmp_path / "videoSRC02_64x36_25.yuv").write_bytes(bytes(fb * 3))
    (tmp_path / "mp4").mkdir()
    os.symlink(shared_videos / "sintel_854x480.mp4", tmp_path / "mp4" / "videoSRC02.mp4")
    os.symlink(shared_videos / "sintel_854x480.mp4", tmp_path / "mp4" / "videoSRC10.mp4")
    (tmp_path / "videoSRC03_64x36_30.yuv").write_bytes(bytes(fb * 2 + 7))  # bad size
    with pytest.warns(UserWarning, match="27 of 30 listed videos missing"):
        vids = create_dataset("mcl_jcv", root=str(tmp_path), allow_missing=True).videos()
    assert [v.id for v in vids] == ["videoSRC02", "videoSRC03", "videoSRC10"]
    assert vids[0].path.endswith("videoSRC02_64x36_25.yuv") and vids[2].path.endswith("videoSRC10.mp4")
    ds = create_dataset("mcl_jcv", root=str(tmp_path), size=32, clip_len=17, fps=30)
    (clip,) = list(ds.clips(vids[0]))
    assert clip.valid == 3 and clip.source_fps == 25.0 and clip.video_id == "videoSRC02"
    with pytest.raises(VideoError, match="videoSRC03_64x36_30.yuv: file size .* not a multiple"):
        list(ds.clips(vids[1]))
    assert [c.valid for c in ds.clips(vids[2])] == [17, 17, 14]


def test_explicit_size_for_unnamed_yuv(tmp_path):
    (tmp_path / "videoSRC01.yuv").write_bytes(bytes(yuv420_frame_bytes(32, 18) * 4))
    ds = create_dataset("mcl_jcv", root=str(tmp_path), width=32, height=18, source_fps=30, size=16, clip_len="whole",
                        allow_missing=True)
    with pytest.warns(UserWarning):
        (v,) = ds.videos()
    (clip,) = list(ds.clips(v))
    assert clip.valid == 4 and clip.frames.shape == (3, 4, 16, 16)


def test_missing_sources_stop_the_run_unless_allowed_then_are_recorded(tmp_path):
    """A named set must be complete to match the model card: a partial root stops with the count and names;
    with allow_missing=true the run goes on and results.json's dataset.missing names what was absent."""
    for n in (1, 2):
        (tmp_path / f"videoSRC{n:02d}_32x18_30.yuv").write_bytes(bytes(yuv420_frame_bytes(32, 18)))
    with pytest.raises(DatasetError, match=r"28 of 30 listed videos missing .*videoSRC03, .*allow_missing=true"):
        create_dataset("mcl_jcv", root=str(tmp_path)).videos()
    ds = create_dataset("mcl_jcv", root=str(tmp_path), allow_missing=True)
    with pytest.warns(UserWarning, match="28 of 30 listed videos missing"):
        assert [v.id for v in ds.videos()] == ["videoSRC01", "videoSRC02"]
    assert ds.info()["missing"] == [f"videoSRC{n:02d}" for n in range(3, 31)]
