"""Frame manifests: compact exact indices, validation, atomic writes, stable hash, diffs."""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidtok_bench import create_dataset
from vidtok_bench.errors import DatasetError
from vidtok_bench.manifest import (
    SCHEMA,
    ManifestBuilder,
    decode_indices,
    diff_manifests,
    encode_indices,
    load_manifest,
    manifest_sha256,
    manifest_text,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 40), max_size=60))
def test_segments_round_trip_exactly(indices):
    segs = encode_indices(indices)
    assert decode_indices(segs) == tuple(indices)
    assert all(s[2] != 0 for s in segs)


def test_segments_are_compact():
    assert encode_indices(list(range(0, 300, 3))) == [[0, 300, 3]]
    assert encode_indices([5, 6, 7, 7, 7]) == [[5, 8, 1], [7, 8, 1], [7, 8, 1]]
    assert encode_indices([0, 0, 1, 1, 2]) == [[0, 1, 1], [0, 2, 1], [1, 3, 1]]
    assert encode_indices([]) == []


@pytest.mark.parametrize("bad", [[[0, 5]], [[0, 5, 0]], [[5, 0, 1]], [[0, 2.5, 1]], "0-5"])
def test_bad_segments(bad):
    with pytest.raises(ValueError):
        decode_indices(bad)


def synthetic_manifest(tmp_path, name="m.json", **kw):
    opts = dict(num_videos=2, num_frames=11, height=24, width=32, size=16, clip_len=4, fps=15) | kw
    ds = create_dataset("synthetic", **opts)
    b = ManifestBuilder(preprocess=ds.preprocess.as_dict(), dataset={"name": ds.name})
    clips = {}
    for v in ds.videos():
        clips[v.id] = list(ds.clips(v))
        for c in clips[v.id]:
            b.add_clip(v.id, None, c)
        b.finish_video(v.id)
    return b.write(tmp_path / name), clips


def test_builder_records_clips_and_round_trips(tmp_path):
    path, clips = synthetic_manifest(tmp_path)
    doc = json.loads(path.read_text())
    assert doc["schema"] == SCHEMA and doc["clip_len"] == 4 and doc["preprocess"]["fps"] == 15
    v0 = doc["videos"][0]
    assert v0["id"] == "synthetic_000" and v0["source_size"] == [32, 24] and v0["source_fps"] == 30.0
    # 30 -> 15 fps keeps frames 0, 2, ..., 10: two full clips and a padded one
    assert v0["clips"] == [{"start": 0, "valid": 4, "indices": [[0, 8, 2]]}, {"start": 4, "valid": 2, "indices": [[8, 12, 2]]}]
    assert v0["video_checksum"] == clips["synthetic_000"][-1].video_checksum
    m = load_manifest(path)
    for v in m.videos:
        assert [c.source_indices(m.clip_len) for c in v.clips] == [c.source_indices for c in clips[v.id]]
    assert [p for p, _ in m.video("synthetic_000").positions()] == list(range(6))
    assert os.listdir(tmp_path) == ["m.json"]  # no temp file left behind


def test_written_manifest_has_one_line_per_clip(tmp_path):
    path, clips = synthetic_manifest(tmp_path)
    lines = path.read_text().splitlines()
    n_clips = sum(len(v) for v in clips.values())
    assert sum('"indices"' in line for line in lines) == n_clips  # each clip, whole, on its own line
    assert len(lines) < n_clips + 12 * len(clips) + 12


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=4)))
def test_manifest_text_is_the_same_json(doc):
    assert json.loads(manifest_text(doc)) == doc


def test_whole_video_clips_record_null_clip_len(tmp_path):
    b = ManifestBuilder()
    for n, v in ((5, "a"), (7, "b")):
        ds = create_dataset("synthetic", num_videos=1, num_frames=n, height=8, width=8, size=8, clip_len="whole")
        for c in ds.clips(ds.videos()[0]):
            b.add_clip(v, f"{v}.mp4", c)
        b.finish_video(v)
    m = b.manifest()
    assert m.clip_len is None and [c.valid for v in m.videos for c in v.clips] == [5, 7]


def test_builder_misuse():
    ds = create_dataset("synthetic", num_videos=1, num_frames=8, height=8, width=8, size=8, clip_len=4)
    a, b2 = list(ds.clips(ds.videos()[0]))
    b = ManifestBuilder()
    b.add_clip("v", "v.mp4", a)
    with pytest.raises(ValueError, match="not finished"):
        b.manifest()
    with pytest.raises(ValueError, match="in order"):
        b.add_clip("v", "v.mp4", a)
    b.add_clip("v", "v.mp4", b2)
    b.finish_video("v")
    with pytest.raises(ValueError, match="already finished"):
        b.add_clip("v", "v.mp4", a)
    with pytest.raises(ValueError, match="no clips"):
        b.finish_video("w")
    b.add_clip("w", "w.mp4", a)
    b.discard_video("w")  # a video that failed part-way leaves no entry
    assert [v.id for v in b.manifest().videos] == ["v"]


def test_write_is_atomic(tmp_path, monkeypatch):
    path, _ = synthetic_manifest(tmp_path)
    before = path.read_bytes()

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        synthetic_manifest(tmp_path, num_frames=5)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.json"]


def mutate(path, fn, name="x.json"):
    doc = json.loads(path.read_text())
    fn(doc)
    out = path.with_name(name)
    out.write_text(json.dumps(doc))
    return out


@pytest.mark.parametrize("fn,msg", [
    (lambda d: d.update(schema="something/else"), "not a frame manifest"),
    (lambda d: d.update(schema="vidtok-bench/manifest/v9"), "is not supported"),
    (lambda d: d["videos"].append(dict(d["videos"][0])), "appears twice"),
    (lambda d: d["videos"][0].update(path="/abs/a.mp4"), "must be relative"),
    (lambda d: d["videos"][0].update(path="../a.mp4"), "must be relative"),
    (lambda d: d["videos"][0].update(video_checksum="xyz"), "32 lowercase hex"),
    (lambda d: d["videos"][0].update(video_checksum="a" * 64), "32 lowercase hex"),  # a v2 sha256 under the v3 key
    (lambda d: d["videos"][0]["clips"][0].update(indices=[[0, 6, 2]]), "indices name 3 frames, valid=4"),
    (lambda d: d["videos"][0]["clips"][1].update(indices=[[0, 4, 2]]), "must not decrease"),
    (lambda d: d["videos"][0]["clips"][1].update(start=0), "clip starts must increase"),
    (lambda d: d["videos"][0]["clips"][0].update(valid=9, indices=[[0, 9, 1]]), "exceeds clip_len"),
    (lambda d: d.update(videos=[]), "non-empty"),
])
def test_load_validates(tmp_path, fn, msg):
    path, _ = synthetic_manifest(tmp_path)
    with pytest.raises(DatasetError, match=msg) as e:
        load_manifest(mutate(path, fn))
    assert "\n" not in str(e.value) and "x.json" in str(e.value)


def test_load_unreadable(tmp_path):
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_manifest(tmp_path / "bad.json")
    with pytest.raises(DatasetError, match="cannot read manifest"):
        load_manifest(tmp_path / "none.json")


def test_hash_is_stable_and_sensitive(tmp_path):
    path, _ = synthetic_manifest(tmp_path)
    h = manifest_sha256(path)
    assert h == manifest_sha256(load_manifest(path)) == manifest_sha256(json.loads(path.read_text()))
    same = [
        lambda d: d["videos"].reverse(),  # order of videos
        lambda d: d["videos"][0].update(path="elsewhere/x.mp4"),  # location only
        lambda d: d.update(preprocess=None, dataset=None),  # informational
        lambda d: d["videos"][0]["clips"][1].update(indices=[[8, 9, 1], [10, 11, 1]]),  # same frames 8, 10
    ]
    for k, fn in enumerate(same):
        assert manifest_sha256(mutate(path, fn, f"s{k}.json")) == h
    pretty = path.with_name("pretty.json")
    pretty.write_text(json.dumps(json.loads(path.read_text()), indent=4, sort_keys=True))
    assert manifest_sha256(pretty) == h
    differ = [
        lambda d: d["videos"][0]["clips"][1].update(indices=[[8, 10, 1]]),
        lambda d: d["videos"][0].update(video_checksum="0" * 32),
        lambda d: d.update(clip_len=5),
        lambda d: d["videos"][1].update(id="other"),
    ]
    for k, fn in enumerate(differ):
        assert manifest_sha256(mutate(path, fn, f"d{k}.json")) != h


def test_diff_names_each_video_that_differs(tmp_path):
    a, _ = synthetic_manifest(tmp_path, "a.json")
    assert diff_manifests(a, a) == []
    b, _ = synthetic_manifest(tmp_path, "b.json", fps=10)  # other frames for both videos
    lines = diff_manifests(a, b)
    assert len(lines) == 2 and lines[0].startswith("synthetic_000: different frames from clip 0 on (a: 4 frames 0-6/2, b: 4 frames 0-9/3)")
    c = mutate(a, lambda d: (d["videos"].pop(1), d["videos"][0].update(video_checksum="f" * 32)), "c.json")
    assert diff_manifests(a, c, labels=("run1", "run2")) == [
        "synthetic_000: same frame numbers, different content (video_checksum "
        f"{load_manifest(a).videos[0].video_checksum[:12]}… in run1, ffffffffffff… in run2)",
        "synthetic_001: only in run1",
    ]
    d = mutate(a, lambda d: d["videos"][0]["clips"].pop(), "d.json")
    assert diff_manifests(a, d) == ["synthetic_000: 2 clips in a, 1 in b"]


@pytest.mark.parametrize("old", ["v1", "v2", "v3"])
def test_an_old_manifest_loads_with_its_checksums_dropped(tmp_path, old):
    """v1/v2 checksums (``video_sha256``: one running sha256 over the RGB frames' bytes, or a chain of per-frame
    sha256s) and v3's (an XXH3 chain over RGB frames) cannot be compared with v4's XXH3 chain over the decoded
    planes: the frames load exactly, every checksum is dropped, and a warning says so once; the result
    serialises as v4."""
    path, _ = synthetic_manifest(tmp_path)

    def as_old(d):
        d.update(schema=f"vidtok-bench/manifest/{old}")
        for v in d["videos"]:
            if old != "v3":
                v.pop("video_checksum")
                v["video_sha256"] = "ab" * 32  # what those versions wrote: 64 hex digits under another key
    legacy = mutate(path, as_old, f"{old}.json")
    with pytest.warns(UserWarning, match=rf"{old} manifest: its video checksums use an older definition") as rec:
        m = load_manifest(legacy)
    assert len(rec) == 1 and f"{old}.json" in str(rec[0].message)
    now = load_manifest(path)
    assert [v.id for v in m.videos] == [v.id for v in now.videos]
    assert [[c.source_indices(m.clip_len) for c in v.clips] for v in m.videos] == \
        [[c.source_indices(now.clip_len) for c in v.clips] for v in now.videos]
    assert all(v.video_checksum is None for v in m.videos) and m.to_json()["schema"] == "vidtok-bench/manifest/v4"
    assert "video_sha256" not in json.dumps(m.to_json())
    assert diff_manifests(m, now) == []  # no checksum to disagree on; the frames are the same


def test_diff_names_a_video_whose_source_rate_or_size_differs(tmp_path):
    """The hash covers each video's source fps and size, so a refusal must name a video that differs only there
    (e.g. the same frames remuxed at another rate, or an image sequence given another source_fps)."""
    a, _ = synthetic_manifest(tmp_path, "a.json")
    b = mutate(a, lambda d: d["videos"][1].update(source_fps=25.0), "b.json")
    assert manifest_sha256(a) != manifest_sha256(b)
    assert diff_manifests(a, b) == ["synthetic_001: the same frames, but source 30 fps in a, 25 fps in b"]
    c = mutate(a, lambda d: d["videos"][0].update(source_size=[1, 2]), "c.json")
    assert diff_manifests(a, c) == [f"synthetic_000: the same frames, but source {load_manifest(a).videos[0].source_size[0]}x"
                                    f"{load_manifest(a).videos[0].source_size[1]} in a, 1x2 in b"]
