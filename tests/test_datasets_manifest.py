"""dataset=manifest: replays exactly the recorded frames; changed or missing videos fail alone."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from vidtok_bench import create_dataset
from vidtok_bench.errors import ConfigError, DatasetError, VideoError
from vidtok_bench.manifest import ManifestBuilder, load_manifest
from vidtok_bench.video.yuv import rgb_to_yuv420


def frame(i: int, w: int = 20, h: int = 12) -> np.ndarray:
    rng = np.random.default_rng(i)
    return np.clip(rng.integers(0, 60, (h, w, 3)) + 10 * i, 0, 255).astype(np.uint8)


def write_seq(folder, n, w=20, h=12):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(frame(i, w, h)).save(folder / f"{i:05d}.png")


def record(ds, root, path):
    """What a run does: every clip of every video into a manifest, paths relative to root."""
    b = ManifestBuilder(preprocess=ds.preprocess.as_dict())
    out = {}
    for v in ds.videos():
        out[v.id] = list(ds.clips(v))
        for c in out[v.id]:
            b.add_clip(v.id, os.path.relpath(v.path, root), c)
        b.finish_video(v.id)
    return b.write(path), out


@pytest.fixture
def seqs(tmp_path):
    root = tmp_path / "data"
    write_seq(root / "a", 11)
    write_seq(root / "b", 6)
    return root


def replay(man, root, **kw):
    return create_dataset("manifest", manifest=str(man), root=str(root), **kw)


def as_layout(clips):
    return [(c.start, c.valid, c.source_indices, c.frames.shape[1]) for c in clips]


def test_replay_gives_the_recorded_frames_at_the_runs_size(seqs, tmp_path):
    ds = create_dataset("image_sequence", root=str(seqs), source_fps=10, fps=5, size=8, clip_len=3)
    man, orig = record(ds, seqs, tmp_path / "m.json")
    assert load_manifest(man).videos[0].path == "a"
    # the run asks for other frames (native fps, clips of 5): the manifest's frames win
    with pytest.warns(UserWarning, match="clip_len=5 ignored"):
        rp = replay(man, seqs, size=4, fps="native", clip_len=5)
    assert rp.preprocess.clip_len == 3 and rp.preprocess.fps == 5 and rp.preprocess.size == 4
    for v in rp.videos():
        got = list(rp.clips(v))
        assert as_layout(got) == as_layout(orig[v.id])
        assert got[-1].video_checksum == orig[v.id][-1].video_checksum
        assert got[0].frames.shape[-2:] == (4, 4) and got[0].fps == 5.0
    assert rp.info()["manifest_sha256"] and rp.info()["manifest"] == str(man)
    same = create_dataset("image_sequence", root=str(seqs), source_fps=10, fps=5, size=4, clip_len=3)
    for v in same.videos():  # and the pixels equal the normal pipeline's at that size
        for x, y in zip(rp.clips(v), same.clips(v)):
            assert torch.equal(x.frames, y.frames)


def test_overlap_drop_and_repeated_frames_replay_exactly(seqs, tmp_path):
    for kw in (dict(clip_len=4, clip_stride=2, tail="drop", fps=None),
               dict(clip_len=2, clip_stride=3, fps=None),  # gaps between windows
               dict(clip_len=4, fps=20, sampling="timestamps")):  # 10 -> 20 fps repeats frames
        ds = create_dataset("image_sequence", root=str(seqs), source_fps=10, size=8, **kw)
        man, orig = record(ds, seqs, tmp_path / "m.json")
        rp = replay(man, seqs, size=8)
        for v in rp.videos():
            got = list(rp.clips(v))
            assert as_layout(got) == as_layout(orig[v.id])
            assert all(torch.equal(x.frames, y.frames) for x, y in zip(got, orig[v.id]))


def test_changed_content_fails_that_video_only(seqs, tmp_path):
    ds = create_dataset("image_sequence", root=str(seqs), source_fps=10, size=8, clip_len=3, fps="native")
    man, _ = record(ds, seqs, tmp_path / "m.json")
    changed = frame(2).copy()
    changed[0, 0] ^= 1  # one value off by one: invisible, but not the recorded content
    Image.fromarray(changed).save(seqs / "a" / "00002.png")
    rp = replay(man, seqs)
    va, vb = rp.videos()
    with pytest.raises(VideoError, match=r"a: video 'a': content no longer matches the manifest \(video_checksum [0-9a-f]{12}…, recorded"):
        list(rp.clips(va))
    assert len(list(rp.clips(vb))) == 2


def test_missing_resized_or_shorter_video(seqs, tmp_path):
    ds = create_dataset("image_sequence", root=str(seqs), source_fps=10, size=8, clip_len=3, fps="native")
    man, _ = record(ds, seqs, tmp_path / "m.json")
    for p in (seqs / "b").iterdir():
        p.unlink()
    (seqs / "b").rmdir()
    rp = replay(man, seqs)
    va, vb = rp.videos()
    with pytest.raises(VideoError, match=r"video 'b' of the manifest is not under the root"):
        list(rp.clips(vb))
    (seqs / "a" / "00010.png").unlink()
    with pytest.raises(VideoError, match=r"the video has 10 frames; frame 10 is needed"):
        list(rp.clips(va))
    write_seq(seqs / "b", 6, w=22)
    with pytest.raises(VideoError, match=r"frames are 22x12, the manifest recorded 20x12 \(content no longer matches"):
        list(rp.clips(vb))


def test_reads_no_further_than_the_last_recorded_frame(seqs, tmp_path):
    ds = create_dataset("image_sequence", root=str(seqs), source_fps=10, size=8, clip_len=2, fps="native", max_frames=4)
    man, orig = record(ds, seqs, tmp_path / "m.json")
    (seqs / "a" / "00004.png").write_bytes(b"garbage")  # after the recorded frames 0-3
    got = list(replay(man, seqs).clips(replay(man, seqs).videos()[0]))
    assert [c.source_indices for c in got] == [(0, 1), (2, 3)] and got[-1].video_checksum == orig["a"][-1].video_checksum


def test_raw_yuv_without_size_in_name_uses_recorded_size(tmp_path):
    root = tmp_path / "yuv"
    root.mkdir()
    p = root / "clip.yuv"  # no *_WxH_FPS in the name
    p.write_bytes(b"".join(rgb_to_yuv420(np.full((4, 8, 3), (200 - 20 * i, 20 * i, 90), np.uint8)) for i in range(5)))
    ds = create_dataset("folder", root=str(root), width=8, height=4, source_fps=25, size="native", crop="none", clip_len=2, fps="native")
    man, orig = record(ds, root, tmp_path / "m.json")
    rp = replay(man, root, size="native", crop="none")
    (v,) = rp.videos()
    got = list(rp.clips(v))
    assert as_layout(got) == as_layout(orig["clip.yuv"]) and got[-1].video_checksum == orig["clip.yuv"][-1].video_checksum
    # another conversion gives other RGB from the same content: the checksum covers the decoded planes (the
    # content), the conversion is the dataset's yuv_matrix option, recorded with the run's configuration
    rp = replay(man, root, size="native", crop="none", yuv_matrix="bt601")
    other = list(rp.clips(rp.videos()[0]))
    assert other[-1].video_checksum == orig["clip.yuv"][-1].video_checksum
    assert not torch.equal(other[0].frames, orig["clip.yuv"][0].frames)


def test_options(tmp_path, seqs):
    with pytest.raises(ConfigError, match="dataset.manifest=FILE"):
        create_dataset("manifest", root=str(tmp_path))
    with pytest.raises(ConfigError, match="dataset.root=DIR"):
        create_dataset("manifest", manifest=str(tmp_path / "m.json"))
    with pytest.raises(DatasetError, match="cannot read manifest"):
        replay(tmp_path / "none.json", seqs)
    ds = create_dataset("image_sequence", root=str(seqs), source_fps=10, size=8, clip_len=3, fps="native")
    man, _ = record(ds, seqs, tmp_path / "m.json")
    with pytest.raises(DatasetError, match="does not exist"):
        replay(man, tmp_path / "elsewhere").videos()
