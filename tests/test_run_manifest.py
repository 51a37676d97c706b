"""Runs write the exact frames they evaluated (frames_manifest.json, fingerprint.manifest); a
replay (dataset=manifest) reproduces them; compare/gate refuse runs on different frames, naming
the videos; resume keeps the manifest whole; named sets record what was missing."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from vidtok_bench import results as R
from vidtok_bench.cli import main
from vidtok_bench.config import compose
from vidtok_bench.data import Clip, Dataset, VideoRef
from vidtok_bench.errors import BenchError, ConfigError, DatasetError
from vidtok_bench.manifest import load_manifest, manifest_sha256
from vidtok_bench.registry import register_dataset
from vidtok_bench.report.compare import compare_runs
from vidtok_bench.runner import Runner

SEQS = {"a": 7, "b": 5, "c": 6}


def frame(seq: str, i: int) -> np.ndarray:
    rng = np.random.default_rng([ord(seq), i])
    return rng.integers(0, 256, (16, 24, 3)).astype(np.uint8)


def write_seq(folder, seq: str, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(frame(seq, i)).save(folder / f"{i:05d}.png")


@pytest.fixture
def root(tmp_path):
    r = tmp_path / "data"
    for seq, n in SEQS.items():
        write_seq(r / seq, seq, n)
    return r


def run(out, *overrides, dataset=None, tokenizer="trilinear_488", **kw):
    """A small lossy run (values differ per video) at 16x16, 5-frame clips, native rate."""
    ds = dataset or ["dataset=image_sequence", f"dataset.root={kw.pop('root')}", "dataset.source_fps=10"]
    cfg = compose([f"tokenizer={tokenizer}", *ds, "dataset.fps=native", "dataset.size=16", "dataset.clip_len=5",
                   f"output_dir={out}", "progress=false", "metrics=[psnr]", *overrides])
    runner = Runner(cfg)
    return runner.run(), runner


def replay(out, manifest, root, *overrides):
    return run(out, *overrides, dataset=["dataset=manifest", f"dataset.manifest={manifest}", f"dataset.root={root}"])


def per_clip(out) -> dict[str, list]:
    return {r.video: [(c.start, c.valid, c.stats["psnr"]) for c in r.clips] for r in R.read_records(out / R.PER_CLIP_FILE)}


def test_run_writes_the_frames_it_evaluated_and_their_hash(root, tmp_path):
    res, _ = run(tmp_path / "A", root=root)
    f = tmp_path / "A" / R.MANIFEST_FILE
    m = load_manifest(f)
    assert [v.id for v in m.videos] == ["a", "b", "c"] and m.clip_len == 5
    a = m.video("a")
    assert a.path == "a" and a.source_fps == 10.0 and a.source_size == (24, 16)
    assert [(c.start, c.valid, c.indices) for c in a.clips] == [(0, 5, (0, 1, 2, 3, 4)), (5, 2, (5, 6))]
    assert res["fingerprint"]["manifest"] == manifest_sha256(f) == R.load_result(tmp_path / "A").fingerprint.manifest
    # each finished video's entry is also on its per-clip record (what resume reads back)
    assert {r.video: r.manifest for r in R.read_records(tmp_path / "A" / R.PER_CLIP_FILE)} == \
        {v.id: v.to_json() for v in m.videos}


def test_replay_gives_identical_values_and_the_same_manifest_hash(root, tmp_path):
    res_a, _ = run(tmp_path / "A", root=root)
    res_b, _ = replay(tmp_path / "B", tmp_path / "A" / R.MANIFEST_FILE, root)
    assert res_b["videos"]["ok"] == 3
    assert per_clip(tmp_path / "B") == per_clip(tmp_path / "A")
    assert res_b["fingerprint"]["manifest"] == res_a["fingerprint"]["manifest"]
    assert res_b["dataset"]["manifest_sha256"] == res_a["fingerprint"]["manifest"]
    # the data fingerprint holds the manifest's content, not its path, and the manifest's clip length
    moved = tmp_path / "elsewhere" / "m.json"
    moved.parent.mkdir()
    shutil.copy(tmp_path / "A" / R.MANIFEST_FILE, moved)
    with pytest.warns(UserWarning, match="clip_len=9 ignored"):
        res_c, _ = replay(tmp_path / "C", moved, root, "dataset.clip_len=9")
    assert res_c["fingerprint"]["data"] == res_b["fingerprint"]["data"]
    assert res_c["fingerprint"]["data"] != res_a["fingerprint"]["data"]


def test_a_changed_or_absent_video_fails_alone_in_the_replay(root, tmp_path):
    run(tmp_path / "A", root=root)
    changed = frame("b", 3).copy()
    changed[0, 0, 0] ^= 1
    Image.fromarray(changed).save(root / "b" / "00003.png")
    shutil.rmtree(root / "c")
    res, _ = replay(tmp_path / "B", tmp_path / "A" / R.MANIFEST_FILE, root)
    failed = {f["video"]: f["error"] for f in res["videos"]["failed"]}
    assert set(failed) == {"b", "c"} and res["videos"]["ok"] == 1
    assert "video 'b': content no longer matches the manifest" in failed["b"]
    assert "video 'c' of the manifest is not under the root" in failed["c"]
    assert all("\n" not in e for e in failed.values())
    assert per_clip(tmp_path / "B")["a"] == per_clip(tmp_path / "A")["a"]  # nothing lost
    assert [v.id for v in load_manifest(tmp_path / "B" / R.MANIFEST_FILE).videos] == ["a"]


@pytest.fixture
def two_runs(root, tmp_path):
    """The same set on two machines, one pixel of video c different: same data fingerprint, other frames."""
    other = tmp_path / "other"
    shutil.copytree(root, other)
    changed = frame("c", 2).copy()
    changed[5, 5, 1] ^= 4
    Image.fromarray(changed).save(other / "c" / "00002.png")
    run(tmp_path / "A", root=root)
    run(tmp_path / "B", root=other)
    return tmp_path / "A", tmp_path / "B"


def test_compare_refuses_different_frames_naming_the_videos(two_runs):
    a, b = two_runs
    ra, rb = R.load_result(a), R.load_result(b)
    assert ra.fingerprint.data == rb.fingerprint.data and ra.fingerprint.manifest != rb.fingerprint.manifest
    with pytest.raises(BenchError) as exc:
        compare_runs(a, b)
    msg = str(exc.value)
    assert "\n" not in msg and "evaluated different frames" in msg and "1 video(s) differ" in msg
    assert "c: same frame numbers, different content" in msg and "a:" not in msg and "--force" in msg
    c = compare_runs(a, b, force=True)
    assert any("c: same frame numbers" in n for n in c.notes)
    (b / R.MANIFEST_FILE).unlink()
    with pytest.raises(BenchError, match=r"cannot be named: .*frames_manifest.json not found"):
        compare_runs(a, b)


def test_gate_refuses_different_frames_and_passes_the_same(two_runs, tmp_path, capsys):
    a, b = two_runs
    assert main(["gate", "--baseline", str(a), "--current", str(b)]) == 2
    err = capsys.readouterr().err
    assert "baseline and current evaluated different frames" in err and "c: same frame numbers" in err
    run(tmp_path / "A2", root=tmp_path / "data")
    assert main(["gate", "--baseline", str(a), "--current", str(tmp_path / "A2")]) == 0
    assert "no frames manifest" not in capsys.readouterr().err


@pytest.mark.parametrize("old", ["v1", "v2"])
def test_an_old_manifest_is_named_as_the_reason_when_frames_match(root, tmp_path, old):
    """A result whose manifest was written with v1/v2 checksums (another definition) against a v3 one over the
    same frames: refused, saying it is the checksum definition, not the frames, and which run to redo."""
    a, b = tmp_path / "A", tmp_path / "B"
    run(a, root=root)
    run(b, root=root)
    doc = json.loads((b / R.MANIFEST_FILE).read_text())
    doc["schema"] = f"vidtok-bench/manifest/{old}"
    for v in doc["videos"]:
        del v["video_checksum"]
        v["video_sha256"] = "0" * 64  # what an old run recorded cannot be compared
    (b / R.MANIFEST_FILE).write_text(json.dumps(doc))
    res = json.loads((b / R.RESULTS_FILE).read_text())
    res["fingerprint"]["manifest"] = "f" * 64
    (b / R.RESULTS_FILE).write_text(json.dumps(res))
    with pytest.raises(BenchError) as exc:
        compare_runs(a, b)
    msg = str(exc.value)
    assert "\n" not in msg and "the same frame numbers per video" in msg
    assert f"B (vidtok-bench/manifest/{old}) recorded content checksums of an older definition" in msg and "rerun" in msg


def test_results_without_a_manifest_hash_fall_back_to_the_data_fingerprint(two_runs, capsys):
    a, b = two_runs
    for d in (a, b):  # as older results: no fingerprint.manifest
        f = d / R.RESULTS_FILE
        data = json.loads(f.read_text())
        del data["fingerprint"]["manifest"]
        f.write_text(json.dumps(data))
    c = compare_runs(a, b)
    assert any("A and B recorded no frames manifest" in n and "data fingerprint only" in n for n in c.notes)
    assert main(["gate", "--baseline", str(a), "--current", str(b)]) == 0
    assert "baseline and current recorded no frames manifest" in capsys.readouterr().err


def test_resume_keeps_the_manifest_complete(root, tmp_path):
    full, _ = run(tmp_path / "A", root=root)
    expected = (tmp_path / "A" / R.MANIFEST_FILE).read_text()
    log = tmp_path / "A" / R.PER_CLIP_FILE
    lines = log.read_text().splitlines()
    log.write_text(lines[0] + "\n" + lines[1][:30])  # interrupted after video a, mid-write of b
    (tmp_path / "A" / R.RESULTS_FILE).unlink()
    res, _ = run(tmp_path / "A", root=root)
    assert res["videos"]["resumed"] == 1
    assert (tmp_path / "A" / R.MANIFEST_FILE).read_text() == expected
    assert res["fingerprint"]["manifest"] == full["fingerprint"]["manifest"]
    # records of an older version carry no entries: no manifest (never a partial or stale one)
    record = json.loads(lines[0])
    del record["manifest"]
    log.write_text(json.dumps(record) + "\n")
    (tmp_path / "A" / R.RESULTS_FILE).unlink()
    with pytest.warns(UserWarning, match=r"1 resumed video\(s\) have no manifest entry \(a; an older run"):
        res, _ = run(tmp_path / "A", root=root)
    assert res["fingerprint"]["manifest"] is None and not (tmp_path / "A" / R.MANIFEST_FILE).exists()


def test_broken_sequences_fail_alone_and_stay_out_of_the_manifest(root, tmp_path):
    (root / "b" / "00002.png").unlink()  # a missing frame
    # mixed sizes at frame 11: c fails part-way, after its first 2-frame clips were scored
    write_seq(root / "c", "c", 12)
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(root / "c" / "00011.png")
    res, _ = run(tmp_path / "A", "dataset.clip_len=2", root=root)
    failed = {f["video"]: f["error"] for f in res["videos"]["failed"]}
    assert failed == {"b": f"{root / 'b'}: missing frame 2: numbering goes from 00001.png to 00003.png",
                      "c": f"{root / 'c'}: mixed frame sizes: 00011.png is 24x20, 00000.png is 24x16"}
    m = load_manifest(tmp_path / "A" / R.MANIFEST_FILE)
    assert [v.id for v in m.videos] == ["a"] and m.clip_len == 2 and len(m.video("a").clips) == 4
    assert len(per_clip(tmp_path / "A")["a"]) == 4


def test_named_set_missing_videos_stop_the_run_or_are_recorded(root, tmp_path):
    listed = "dataset.sequences=[a,zz,b,yy]"
    with pytest.raises(DatasetError, match=r"2 of 4 listed videos missing under .*: zz, yy; set dataset.allow_missing=true"):
        run(tmp_path / "A", listed, root=root)
    with pytest.warns(UserWarning, match="running without them"):
        res, _ = run(tmp_path / "A", listed, "dataset.allow_missing=true", root=root)
    assert res["dataset"]["missing"] == ["zz", "yy"] and res["videos"]["ok"] == 2
    assert R.load_result(tmp_path / "A").dataset.missing == ["zz", "yy"]
    res, _ = run(tmp_path / "B", root=root)
    assert res["dataset"]["missing"] == []


@register_dataset("_no_source_indices")
class NoIndices(Dataset):
    """A plugin that records no source frame numbers: runs, but can write no manifest."""

    def videos(self):
        return [VideoRef("v0", None)]

    def clips(self, video):
        yield Clip("v0", 0, torch.zeros(3, 5, 16, 16), 0, 5)


def test_a_dataset_without_source_frames_gets_no_manifest(tmp_path):
    (tmp_path / R.MANIFEST_FILE).write_text("{}")  # stale, from some earlier run
    with pytest.warns(UserWarning, match="no frames manifest for this run: clip 0 of 'v0' has no source_indices"):
        res, _ = run(tmp_path, dataset=["dataset=_no_source_indices"], tokenizer="identity")
    assert res["videos"]["ok"] == 1 and res["fingerprint"]["manifest"] is None
    assert not (tmp_path / R.MANIFEST_FILE).exists()


def test_an_edited_video_list_is_other_data_not_a_finished_run(tmp_path):
    """The list's frame ranges choose the frames: a list edited in place must not resume (or return) the
    results of its earlier ranges, whose video ids and list path are the same."""
    from vidtok_bench.video.yuv import rgb_to_yuv420

    rng = np.random.default_rng(0)
    (tmp_path / "v_16x16_10.yuv").write_bytes(b"".join(
        rgb_to_yuv420(rng.integers(0, 256, (16, 16, 3)).astype(np.uint8)) for _ in range(12)))
    lst = tmp_path / "list.csv"
    ds = ["dataset=video_list", f"dataset.list={lst}"]
    lst.write_text("path,start,end\nv_16x16_10.yuv,0,5\n")
    first, _ = run(tmp_path / "A", dataset=ds)
    lst.write_text("path,start,end\nv_16x16_10.yuv,5,10\n")
    with pytest.raises(ConfigError, match="holds a finished run with a different configuration"):
        run(tmp_path / "A", dataset=ds)
    second, _ = run(tmp_path / "A", "overwrite=true", dataset=ds)
    assert second["fingerprint"]["data"] != first["fingerprint"]["data"]
    assert load_manifest(tmp_path / "A" / R.MANIFEST_FILE).video("v_16x16_10.yuv").clips[0].indices == (5, 6, 7, 8, 9)


def test_compare_takes_a_replay_of_a_runs_manifest_as_the_same_clips(root, tmp_path):
    """Replaying a run's manifest exists to score another tokenizer on exactly its frames: compare must accept
    the pair (equal frames manifests, same resize), and still refuse a replay resized differently."""
    run(tmp_path / "A", root=root)
    run(tmp_path / "B", tokenizer="identity",
        dataset=["dataset=manifest", f"dataset.manifest={tmp_path / 'A' / R.MANIFEST_FILE}", f"dataset.root={root}"])
    c = compare_runs(tmp_path / "A", tmp_path / "B")
    assert any("the frames manifests are equal" in n and "dataset.name" in n for n in c.notes)
    psnr = c.metrics.set_index("metric").loc["psnr"]
    assert psnr["b"] > psnr["a"] and psnr["videos"] == 3  # identity beats trilinear, on the same three videos
    replay(tmp_path / "C", tmp_path / "A" / R.MANIFEST_FILE, root, "dataset.size=8")
    with pytest.raises(BenchError, match=r"dataset.preprocess.size \(16 vs 8\)") as exc:
        compare_runs(tmp_path / "A", tmp_path / "C")
    assert "dataset.name" not in str(exc.value)  # the refusal names what changes the pixels, not the replay itself


def test_frames_of_other_file_types_replay_and_replay_again(tmp_path):
    """image_sequence reads the extensions it is given (here .bmp); its manifest must replay those frames, and
    so must the replay's own manifest, without the user repeating the option."""
    for i in range(6):
        Image.fromarray(frame("s", i)).save((tmp_path / "data" / "s").mkdir(parents=True, exist_ok=True)
                                            or tmp_path / "data" / "s" / f"{i:03d}.bmp")
    run(tmp_path / "A", "dataset.extensions=[bmp]", root=tmp_path / "data")
    res, _ = replay(tmp_path / "B", tmp_path / "A" / R.MANIFEST_FILE, tmp_path / "data")
    assert res["videos"]["ok"] == 1 and per_clip(tmp_path / "B") == per_clip(tmp_path / "A")
    res, _ = replay(tmp_path / "C", tmp_path / "B" / R.MANIFEST_FILE, tmp_path / "data")
    assert res["videos"]["ok"] == 1 and res["fingerprint"]["manifest"] == R.load_result(tmp_path / "A").fingerprint.manifest
