"""image_sequence / davis2017_val: numbered frames as videos, streamed; each bad input fails alone."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import xxhash
from PIL import Image

from vidtok_bench import create_dataset
from vidtok_bench.catalog import DAVIS_2017_VAL
from vidtok_bench.data import Preprocess
from vidtok_bench.errors import ConfigError, DatasetError, VideoError
from vidtok_bench.video.decode import frames_to_clips
from vidtok_bench.video.images import list_frames, natural_key, open_image_sequence
from vidtok_bench.video.resize import FrameResizer


def frame(i: int, w: int = 20, h: int = 12) -> np.ndarray:
    """Frame i: a distinct pattern whose mean grows with i."""
    rng = np.random.default_rng(i)
    return np.clip(rng.integers(0, 60, (h, w, 3)) + 10 * i, 0, 255).astype(np.uint8)


def write_seq(folder, n, fmt="{:05d}.png", w=20, h=12, start=0):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        Image.fromarray(frame(i, w, h)).save(folder / fmt.format(i))
    return folder


@pytest.fixture
def root(tmp_path):
    write_seq(tmp_path / "seq_b", 7)
    write_seq(tmp_path / "seq_a", 10, fmt="frame{}.png")  # unpadded numbers: natural sort, not text sort
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "seq_a" / "notes.txt").write_text("ignored")
    return tmp_path


def test_natural_order_and_frames_equal_the_pipeline_on_the_source(root):
    assert [p.name for p in list_frames(root / "seq_a")][:3] == ["frame0.png", "frame1.png", "frame2.png"]
    assert [p.name for p in list_frames(root / "seq_a")][-1] == "frame9.png"
    assert sorted(["f10", "f2", "f1"], key=natural_key) == ["f1", "f2", "f10"]
    ds = create_dataset("image_sequence", root=str(root), source_fps=10, fps=5, size=8, clip_len=3)
    vids = ds.videos()
    assert [v.id for v in vids] == ["seq_a", "seq_b"]
    clips = list(ds.clips(vids[0]))
    # 10 -> 5 fps keeps every 2nd frame: 0 2 4 | 6 8 8
    assert [c.source_indices for c in clips] == [(0, 2, 4), (6, 8, 8)]
    assert clips[0].source_fps == 10.0 and clips[0].fps == 5.0 and clips[0].source_size == (20, 12)
    resize = FrameResizer(8)
    for c in clips:
        for t, i in enumerate(c.source_indices):
            assert torch.equal(c.frames[:, t], resize(frame(i)) * 2 - 1)
    per_frame = b"".join(xxhash.xxh3_128(frame(i).tobytes()).digest() for i in (0, 2, 4, 6, 8))  # manifest v3 checksum
    assert clips[-1].video_checksum == xxhash.xxh3_128(per_frame).hexdigest()


def test_reads_only_sampled_frames_one_at_a_time(root, monkeypatch):
    import vidtok_bench.video.images as images

    decoded = []
    real = images.read_rgb
    monkeypatch.setattr(images, "read_rgb", lambda f, p: decoded.append(p.name) or real(f, p))
    src = open_image_sequence(root / "seq_b", 30)
    list(frames_to_clips(src, Preprocess(fps=10, size=8, clip_len=None), "seq_b", workers=1))
    assert decoded == ["00000.png", "00003.png", "00006.png"]


def test_jpeg_frames(tmp_path):
    write_seq(tmp_path / "v", 4, fmt="{:05d}.jpg")
    ds = create_dataset("image_sequence", root=str(tmp_path), source_fps=24, fps="native", size="native", crop="none", clip_len=4)
    (clip,) = list(ds.clips(ds.videos()[0]))
    assert clip.frames.shape == (3, 4, 12, 20) and clip.source_indices == (0, 1, 2, 3)
    with Image.open(tmp_path / "v" / "00002.jpg") as im:
        expected = torch.from_numpy(np.asarray(im.convert("RGB")).astype(np.float32) / 255).permute(2, 0, 1)
    assert torch.allclose(clip.frames[:, 2], expected * 2 - 1)


def broken(tmp_path, kind):
    d = write_seq(tmp_path / "bad", 5)
    if kind == "gap":
        (d / "00002.png").unlink()
    elif kind == "sizes":
        Image.fromarray(frame(3, w=22)).save(d / "00003.png")
    elif kind == "unreadable":
        (d / "00004.png").write_bytes(b"not a png at all")
    elif kind == "truncated":
        data = (d / "00001.png").read_bytes()
        (d / "00001.png").write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        for p in d.iterdir():
            p.unlink()
    elif kind == "duplicate":
        Image.fromarray(frame(1)).save(d / "1.png")
    elif kind == "unnumbered":
        Image.fromarray(frame(1)).save(d / "cover.png")
    elif kind == "sixteen_bit":
        Image.fromarray(np.zeros((12, 20), np.uint16)).save(d / "00004.png")
    return d


@pytest.mark.parametrize("kind,msg", [
    ("gap", r"bad: missing frame 2: numbering goes from 00001.png to 00003.png"),
    ("sizes", r"bad: mixed frame sizes: 00003.png is 22x12, 00000.png is 20x12"),
    ("unreadable", r"bad: frame 00004.png: unreadable image"),
    ("truncated", r"bad: frame 00001.png: unreadable image"),
    ("empty", r"bad: no frames \(jpeg/jpg/png files\) in this folder"),
    ("duplicate", r"bad: two files for frame 1: (00001.png and 1.png|1.png and 00001.png)"),
    ("unnumbered", r"bad: frame file cover.png has no frame number"),
    ("sixteen_bit", r"bad: frame 00004.png: image mode I;16 is not 8-bit"),
])
def test_bad_sequence_fails_alone(tmp_path, kind, msg):
    broken(tmp_path, kind)
    write_seq(tmp_path / "good", 3)
    ds = create_dataset("image_sequence", root=str(tmp_path), source_fps=30, size=8, clip_len=3, fps="native")
    vids = {v.id: v for v in ds.videos()}
    with pytest.raises(VideoError, match=msg) as e:
        list(ds.clips(vids["bad"]))
    assert "\n" not in str(e.value) and "cannot convert" not in str(e.value)  # said once, not wrapped again
    assert [c.source_indices for c in ds.clips(vids["good"])] == [(0, 1, 2)]  # the other video is unaffected


def test_no_subfolders_and_no_root(tmp_path):
    Image.fromarray(frame(0)).save(tmp_path / "00000.png")
    with pytest.raises(DatasetError, match="no sub-folders .* holds 1 images"):
        create_dataset("image_sequence", root=str(tmp_path), source_fps=30).videos()
    with pytest.raises(DatasetError, match="does not exist"):
        create_dataset("image_sequence", root=str(tmp_path / "nope"), source_fps=30).videos()
    with pytest.raises(ConfigError, match="source_fps=F"):
        create_dataset("image_sequence", root=str(tmp_path))
    with pytest.raises(ConfigError, match="needs a root"):
        create_dataset("image_sequence", source_fps=30)


def test_listed_sequences_missing(root):
    kw = dict(root=str(root), source_fps=30, sequences=["seq_b", "gone1", "seq_a", "gone2"])
    with pytest.raises(DatasetError, match=r"2 of 4 listed videos missing under .*: gone1, gone2; set dataset.allow_missing=true"):
        create_dataset("image_sequence", **kw).videos()
    ds = create_dataset("image_sequence", allow_missing=True, **kw)
    with pytest.warns(UserWarning, match="running without them"):
        assert [v.id for v in ds.videos()] == ["seq_b", "seq_a"]  # the list's order
    assert ds.info()["missing"] == ["gone1", "gone2"]


def test_davis_named_config(tmp_path):
    ds = create_dataset("davis2017_val", root=str(tmp_path), allow_missing=True)
    assert ds.source_fps == 24.0 and len(ds.sequences) == 30 and ds.extensions == ("jpg",)
    assert ds.sequences == DAVIS_2017_VAL  # the YAML's list and the catalog's (data verify) are the same
    base = tmp_path / "JPEGImages" / "480p"
    write_seq(base / "blackswan", 3, fmt="{:05d}.jpg")
    write_seq(base / "not-in-val", 3, fmt="{:05d}.jpg")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        vids = ds.videos()
    assert [v.id for v in vids] == ["blackswan"] and len(ds.info()["missing"]) == 29
    with pytest.raises(DatasetError, match="29 of 30 listed videos missing"):
        create_dataset("davis2017_val", root=str(tmp_path)).videos()
