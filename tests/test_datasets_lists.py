"""video_list and the named sets built on lists/catalog facts (uvg, tokenbench_list, *_fvd)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vidtok_bench import create_dataset
from vidtok_bench.catalog import CATALOG, UVG_FRAME_BYTES
from vidtok_bench.config import compose
from vidtok_bench.errors import ConfigError, DatasetError, VideoError
from vidtok_bench.video.yuv import rgb_to_yuv420


def yuv(path, n, w=8, h=4):
    """n frames whose red level encodes the frame number."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(rgb_to_yuv420(np.full((h, w, 3), (16 * i, 90, 200 - 16 * i), np.uint8)) for i in range(n)))
    return path


@pytest.fixture
def root(tmp_path):
    yuv(tmp_path / "v" / "a_8x4_10.yuv", 12)
    yuv(tmp_path / "v" / "sub" / "b_8x4_10.yuv", 6)
    return tmp_path / "v"


PP = dict(size="native", crop="none", fps="native", clip_len=3)


def test_csv_ranges_select_source_frames(root, tmp_path):
    lst = tmp_path / "list.csv"
    lst.write_text("path,start,end\na_8x4_10.yuv,2,8\nsub/b_8x4_10.yuv,,\na_8x4_10.yuv,9,\n")
    ds = create_dataset("video_list", list=str(lst), root=str(root), **PP)
    vids = ds.videos()
    assert [v.id for v in vids] == ["a_8x4_10.yuv@2-8", "sub/b_8x4_10.yuv", "a_8x4_10.yuv@9-"]
    assert [c.source_indices for c in ds.clips(vids[0])] == [(2, 3, 4), (5, 6, 7)]
    assert [c.source_indices for c in ds.clips(vids[1])] == [(0, 1, 2), (3, 4, 5)]
    assert [c.source_indices for c in ds.clips(vids[2])] == [(9, 10, 11)]
    # fps sampling starts at the range's first frame: 10 -> 5 fps keeps 2, 4, 6
    ds5 = create_dataset("video_list", list=str(lst), root=str(root), **(PP | dict(fps=5)))
    assert [c.source_indices for c in ds5.clips(ds5.videos()[0])] == [(2, 4, 6)]


def test_json_list_ids_and_range_past_the_end(root, tmp_path):
    lst = tmp_path / "l.json"
    lst.write_text(json.dumps({"videos": [{"path": "a_8x4_10.yuv", "start": 0, "end": 20, "id": "long"},
                                          ["sub/b_8x4_10.yuv", 1, 4]]}))
    ds = create_dataset("video_list", list=str(lst), root=str(root), **PP)
    long, b = ds.videos()
    assert (long.id, b.id) == ("long", "sub/b_8x4_10.yuv")
    assert [c.source_indices for c in ds.clips(b)] == [(1, 2, 3)]
    with pytest.raises(VideoError, match=r"a_8x4_10.yuv: the video has 12 frames; the range asks for frames 0-19"):
        list(ds.clips(long))


def test_root_defaults_to_the_lists_folder(root):
    (root / "l.csv").write_text("a_8x4_10.yuv,0,3\n")  # no header: path,start,end
    ds = create_dataset("video_list", list=str(root / "l.csv"), **PP)
    assert [c.source_indices for c in ds.clips(ds.videos()[0])] == [(0, 1, 2)]


@pytest.mark.parametrize("rows,msg", [
    ("path,start,end\na_8x4_10.yuv,5,5\n", "end 5 must be after start 5"),
    ("path,start,end\na_8x4_10.yuv,x,\n", r"row 2: frame number 'x'"),
    ("path,start,end\na_8x4_10.yuv,-1,\n", "must be an integer >= 0"),
    ("path,start,end\n", "lists no videos"),
    ("id,path\nsame,a_8x4_10.yuv\nsame,sub/b_8x4_10.yuv\n", "'same' appears twice"),
])
def test_bad_lists(root, rows, msg):
    (root / "l.csv").write_text(rows)
    with pytest.raises(DatasetError, match=msg):
        create_dataset("video_list", list=str(root / "l.csv")).videos()


def test_missing_files_stop_named_sets_or_are_recorded(root, tmp_path):
    lst = tmp_path / "l.csv"
    lst.write_text("path\na_8x4_10.yuv\ngone1.mp4\nsub/b_8x4_10.yuv\ngone2.mp4\n")
    for name in ("tokenbench_list", "ucf101_fvd", "kinetics600_fvd", "video_list"):
        with pytest.raises(DatasetError, match=r"2 of 4 listed videos missing under .*: gone1.mp4, gone2.mp4; set dataset.allow_missing=true"):
            create_dataset(name, list=str(lst), root=str(root)).videos()
    ds = create_dataset("ucf101_fvd", list=str(lst), root=str(root), allow_missing=True)
    with pytest.warns(UserWarning, match="2 of 4 listed videos missing"):
        assert [v.id for v in ds.videos()] == ["a_8x4_10.yuv", "sub/b_8x4_10.yuv"]
    assert ds.info()["missing"] == ["gone1.mp4", "gone2.mp4"] and ds.plugin_name == "video_list"
    with pytest.raises(ConfigError, match="dataset.list=FILE"):
        create_dataset("tokenbench_list", root=str(root))
    with pytest.raises(DatasetError, match="none.csv: video list file not found"):
        create_dataset("video_list", list=str(tmp_path / "none.csv"), root=str(root)).videos()


@pytest.mark.parametrize("rows", ["foo,bar\n1,2\n", "foo, bar\nclip.mp4,x\n"])
def test_csv_header_without_path_column_is_named(root, tmp_path, rows):
    """A header row naming other columns is not read as paths, for every dataset that reads lists."""
    lst = tmp_path / "l.csv"
    lst.write_text(rows)
    msg = rf"^video list {lst}: no 'path' column \(columns: foo, bar\)$"
    for name, kw in (("folder", {"root": str(lst)}), ("video_list", {"list": str(lst), "root": str(root)}),
                     ("tokenbench_list", {"list": str(lst), "root": str(root)})):
        with pytest.raises(DatasetError, match=msg):
            create_dataset(name, **kw).videos()


def test_list_that_is_a_directory_is_named_as_one(root, tmp_path):
    for name in ("video_list", "tokenbench_list", "ucf101_fvd", "kinetics600_fvd"):
        with pytest.raises(DatasetError, match=rf"^{root}: is a directory, not a video list file$"):
            create_dataset(name, list=str(root), root=str(root)).videos()


def test_new_named_configs_compose_with_hydra(tmp_path):
    for name in ("davis2017_val", "manifest", "tokenbench_list"):  # the rest share these headers (~2 s a compose)
        sets = [f"dataset={name}", f"dataset.root={tmp_path}"]
        if name == "tokenbench_list":
            sets.append(f"dataset.list={tmp_path}/l.csv")
        if name == "manifest":
            sets.append(f"dataset.manifest={tmp_path}/m.json")
        cfg = compose(sets)["dataset"]
        assert cfg["name"] == name and cfg["clip_len"] is None and cfg["size"] is None  # preprocess keys from the protocol
    with pytest.raises(ConfigError, match="dataset.list must be set"):
        compose(["dataset=ucf101_fvd", f"dataset.root={tmp_path}"])


def fake_uvg(root, names_frames):
    """Stand-ins with the published names and sizes, as sparse files (no GBs written)."""
    root.mkdir(parents=True, exist_ok=True)
    for name, frames in names_frames:
        with open(root / f"{name}_1920x1080_120fps_420_8bit_YUV.yuv", "wb") as f:
            f.truncate(frames * UVG_FRAME_BYTES)


def test_uvg_catalog_facts():
    uvg = CATALOG["uvg"]
    assert [(v.name, v.frames) for v in uvg.videos] == [
        ("Beauty", 600), ("Bosphorus", 600), ("HoneyBee", 600), ("Jockey", 600),
        ("ReadySteadyGo", 600), ("ShakeNDry", 300), ("YachtRide", 600)]
    assert all(v.size_bytes == v.frames * 1920 * 1080 * 3 // 2 for v in uvg.videos)
    assert all(v.sha256 is None for v in uvg.videos) and all(d.sha256 is None for d in uvg.downloads)  # none known


def test_uvg_finds_files_and_reports_missing(tmp_path):
    root = tmp_path / "uvg"
    fake_uvg(root / "x", [("Beauty", 1), ("Jockey", 600)])
    (root / "ReadySetGo_1920x1080_120fps_420_8bit_YUV.yuv").write_bytes(b"")  # the alias name is accepted
    with pytest.raises(DatasetError, match=r"4 of 7 listed videos missing .*: Bosphorus, HoneyBee, ShakeNDry, YachtRide; set dataset.allow_missing=true.*ultravideo.fi"):
        create_dataset("uvg", root=str(root)).videos()
    ds = create_dataset("uvg", root=str(root), allow_missing=True, size="native", crop="none", clip_len=1, fps="native")
    with pytest.warns(UserWarning):
        vids = {v.id: v for v in ds.videos()}
    assert sorted(vids) == ["Beauty", "Jockey", "ReadySteadyGo"]
    with pytest.raises(VideoError, match=r"Beauty_1920x1080_120fps_420_8bit_YUV.yuv: 3110400 bytes, the published sequence is 1866240000 bytes \(600 frames\)"):
        list(ds.clips(vids["Beauty"]))
    with pytest.raises(DatasetError, match="uvg needs dataset.root"):
        create_dataset("uvg")


def test_a_byte_order_mark_and_one_column_of_bare_names_are_read_as_lists(tmp_path):
    from vidtok_bench.datasets._common import read_list

    bom = tmp_path / "excel.csv"
    bom.write_text("\ufeffpath,start,end\nclip.mp4,0,16\n", encoding="utf-8")
    assert [row for _, row in read_list(bom, ("path", "start", "end"))] == [{"path": "clip.mp4", "start": "0", "end": "16"}]
    bare = tmp_path / "ids.csv"
    bare.write_text("clip\nclip02\n")  # one column of extensionless names: data, not a header
    assert [row["path"] for _, row in read_list(bare)] == ["clip", "clip02"]


def test_allow_missing_with_nothing_present_is_an_error_not_an_empty_run(root, tmp_path):
    """allow_missing runs without some videos; with none present there is nothing to evaluate, and a result of
    0 videos would stand in the output folder for a set that was never read (image_sequence already refused)."""
    lst = tmp_path / "l.csv"
    lst.write_text("path\ngone1.mp4\ngone2.mp4\n")
    with pytest.raises(DatasetError, match=r"none of the 2 listed videos is under .*: gone1.mp4, gone2.mp4$"):
        create_dataset("video_list", list=str(lst), root=str(root), allow_missing=True).videos()
    with pytest.raises(DatasetError, match=r"uvg': none of the 7 listed videos is under .*: Beauty, .*; download"):
        create_dataset("uvg", root=str(root), allow_missing=True).videos()
