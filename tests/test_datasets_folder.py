"""folder: directory scans, CSV/JSON lists, errors; real decodes through the dataset."""
from __future__ import annotations

import json
import os

import pytest

from vidtok_bench import create_dataset
from vidtok_bench.errors import ConfigError, DatasetError, VideoError
from vidtok_bench.video.yuv import yuv420_frame_bytes


def link(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(src, dst)


@pytest.fixture
def tree(shared_videos, tmp_path):
    link(shared_videos / "sintel_854x480.mp4", tmp_path / "b" / "sintel.mp4")
    link(shared_videos / "kinetics_flipping_pancake_426x240.mkv", tmp_path / "a.MKV")
    (tmp_path / "notes.txt").write_text("not a video")
    (tmp_path / ".hidden").mkdir()
    link(shared_videos / "sintel_854x480.mp4", tmp_path / ".hidden" / "x.mp4")
    (tmp_path / "raw_32x16_24.yuv").write_bytes(bytes(yuv420_frame_bytes(32, 16) * 3))
    return tmp_path


def test_directory_recursive_sorted(tree):
    ds = create_dataset("folder", root=str(tree))
    assert [v.id for v in ds.videos()] == ["a.MKV", "b/sintel.mp4", "raw_32x16_24.yuv"]
    ds = create_dataset("folder", root=str(tree), extensions=["mp4"])
    assert [v.id for v in ds.videos()] == ["b/sintel.mp4"]


def test_clips_through_dataset(tree):
    ds = create_dataset("folder", root=str(tree), size=32, clip_len=17, fps=30)
    vids = {v.id: v for v in ds.videos()}
    clips = list(ds.clips(vids["b/sintel.mp4"]))
    assert [c.valid for c in clips] == [17, 17, 14] and clips[0].video_id == "b/sintel.mp4"
    (raw,) = list(ds.clips(vids["raw_32x16_24.yuv"]))  # size/fps from the name
    assert raw.valid == 3 and raw.source_fps == 24.0 and raw.frames.shape == (3, 17, 32, 32)


def test_csv_and_json_lists(tree, shared_videos):
    (tree / "list.csv").write_text("id,path\nfirst,b/sintel.mp4\n," + str(shared_videos / "squirrel_1280x720.mp4") + "\n")
    vids = create_dataset("folder", root=str(tree / "list.csv")).videos()
    assert [v.id for v in vids] == ["first", str(shared_videos / "squirrel_1280x720.mp4")]
    assert vids[0].path == str(tree / "b" / "sintel.mp4")
    (tree / "plain.csv").write_text("a.MKV\nb/sintel.mp4\n")
    assert [v.id for v in create_dataset("folder", root=str(tree / "plain.csv")).videos()] == ["a.MKV", "b/sintel.mp4"]
    (tree / "list.json").write_text(json.dumps(["b/sintel.mp4", {"path": "a.MKV", "id": "pancake"}]))
    assert [v.id for v in create_dataset("folder", root=str(tree / "list.json")).videos()] == ["b/sintel.mp4", "pancake"]
    (tree / "wrapped.json").write_text(json.dumps({"videos": ["a.MKV"]}))
    assert [v.id for v in create_dataset("folder", root=str(tree / "wrapped.json")).videos()] == ["a.MKV"]


def test_listed_missing_file_fails_when_read_not_dropped(tree):
    (tree / "l.json").write_text(json.dumps(["gone.mp4", "b/sintel.mp4"]))
    ds = create_dataset("folder", root=str(tree / "l.json"), size=32)
    vids = ds.videos()
    assert [v.id for v in vids] == ["gone.mp4", "b/sintel.mp4"]
    with pytest.raises(VideoError, match="gone.mp4: file not found"):
        list(ds.clips(vids[0]))


def test_missing_root(tmp_path):
    with pytest.raises(DatasetError, match=f"dataset root {tmp_path / 'nope'} does not exist"):
        create_dataset("folder", root=str(tmp_path / "nope")).videos()


def test_no_root():
    with pytest.raises(ConfigError, match="needs a root"):
        create_dataset("folder")


def test_empty_directory(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match=f"no video files .* found under {tmp_path}"):
        create_dataset("folder", root=str(tmp_path)).videos()


@pytest.mark.parametrize("content,msg", [("[1, 2]", "entry 0"), ("{", "cannot read video list"), ("[]", "lists no videos")])
def test_bad_json_list(tmp_path, content, msg):
    (tmp_path / "l.json").write_text(content)
    with pytest.raises(DatasetError, match=msg):
        create_dataset("folder", root=str(tmp_path / "l.json")).videos()


def test_single_file_root(shared_videos):
    vids = create_dataset("folder", root=str(shared_videos / "sintel_854x480.mp4")).videos()
    assert [v.id for v in vids] == ["sintel_854x480.mp4"]


def test_broken_video_in_folder_is_a_video_error(tree):
    (tree / "broken.mp4").write_bytes(b"\x00" * 1000)
    ds = create_dataset("folder", root=str(tree), size=32)
    vids = {v.id: v for v in ds.videos()}
    with pytest.raises(VideoError, match="broken.mp4: cannot open video"):
        list(ds.clips(vids["broken.mp4"]))


@pytest.mark.parametrize("bad", [{"workers": 0}, {"width": "wide"}, {"yuv_matrix": "bt2020"}, {"colour": 1}])
def test_bad_options(tmp_path, bad):
    with pytest.raises(ConfigError):
        create_dataset("folder", root=str(tmp_path), **bad)


def test_yuv_named_config(tree):
    ds = create_dataset("yuv", root=str(tree), size=16, clip_len="whole")
    assert ds.plugin_name == "folder" and ds.name == "yuv"
    (v,) = ds.videos()
    assert v.id == "raw_32x16_24.yuv"
    (clip,) = list(ds.clips(v))
    assert clip.valid == 3


def test_scans_follow_symlinked_folders_once(tmp_path):
    """Sets often live on another disk, linked into the root: folder, mcl_jcv and uvg (and `data verify`) find
    files in a symlinked sub-folder, and a link back up the tree ends the scan instead of looping."""
    from vidtok_bench.catalog import CATALOG

    disk = tmp_path / "disk"
    disk.mkdir()
    (disk / "videoSRC07_32x16_30.yuv").write_bytes(bytes(yuv420_frame_bytes(32, 16) * 2))
    with open(disk / "ShakeNDry_1920x1080_120fps_420_8bit_YUV.yuv", "wb") as f:
        f.truncate(933_120_000)  # sparse: the published size
    root = tmp_path / "root"
    link(disk, root / "linked")
    link(root, root / "linked_back")  # a loop
    assert [v.id for v in create_dataset("folder", root=str(root)).videos()] == [
        "linked/ShakeNDry_1920x1080_120fps_420_8bit_YUV.yuv", "linked/videoSRC07_32x16_30.yuv"]
    with pytest.warns(UserWarning, match="29 of 30 listed videos missing"):
        assert [v.id for v in create_dataset("mcl_jcv", root=str(root), allow_missing=True).videos()] == ["videoSRC07"]
    assert list(CATALOG["uvg"].locate(root)) == ["ShakeNDry"]
