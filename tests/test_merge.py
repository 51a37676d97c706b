"""Independent shards (run shard=I/N) and `vidtok-bench merge`: the merged result equals the single
run; shards of different configurations, fingerprints, splits or incomplete sets are refused."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from _split_runs import FVD_9, TINY, assert_same_values, cli, one_thread, single
from _weights_fixture import seeded_cache_dir
from vidtok_bench import results as R
from vidtok_bench.datasets.synthetic import SyntheticDataset
from vidtok_bench.errors import VideoError
from vidtok_bench.registry import register_dataset


def shards(out: Path, n: int, *extra: str, which=None) -> Path:
    for i in which if which is not None else range(n):
        with one_thread():
            assert cli("run", *TINY, *extra, f"shard={i}/{n}", f"output_dir={out}") == 0
    return out


def refused(capsys, *args: str) -> str:
    """The one-line error of a command that must fail."""
    capsys.readouterr()
    assert cli(*args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vidtok-bench: error: ") and len(err.splitlines()) == 1, err
    return err


@pytest.fixture
def fvd_cache(tmp_path, tmp_path_factory, monkeypatch) -> Path:
    """A fresh reference-feature cache beside the seeded I3D weights."""
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights").symlink_to(seeded_cache_dir(tmp_path_factory) / "weights")
    monkeypatch.setenv("VIDTOK_BENCH_CACHE", str(cache))
    return cache


def test_shards_merge_into_the_single_run_and_a_sweep_reuses_reference_features(tmp_path, fvd_cache, capsys):
    # 2 videos x 2 clips = 4 FVD clips, split 3 ways (one shard gets no video)
    extra = ["dataset.num_videos=2", "dataset.num_frames=34", "metrics=[psnr,ssim,fvd]", *FVD_9]
    want = single(tmp_path / "single", *extra)
    out = shards(tmp_path / "split", 3, *extra)
    parts = [R.load_result(out / f"shard-{i}-of-3") for i in range(3)]
    assert [p.shard.videos for p in parts] == [["synthetic_000"], ["synthetic_001"], []]
    assert all(p.shard.dataset_videos == ["synthetic_000", "synthetic_001"] for p in parts)
    assert (out / "shard-0-of-3" / "state" / "fvd.pt").is_file()
    assert cli("merge", str(out), "-o", str(tmp_path / "merged")) == 0
    got, ref = assert_same_values(tmp_path / "merged", want)
    assert got.distributed.mode == "merge" and got.distributed.count == 3 and got.shard is None
    # reference features: computed once by the single run, taken from the cache by every shard
    key = ref.metrics["fvd"].details["reference_cache_key"]
    assert got.metrics["fvd"].details["reference_cache_key"] == key
    assert got.metrics["fvd"].details["reference_cache_hits"] == 4
    # another tokenizer on the same data (a tokenizer sweep) computes only its own clips' features
    other = single(tmp_path / "identity", *extra, "tokenizer=identity", "metrics=[fvd]")
    fvd = R.load_result(other).metrics["fvd"]
    assert fvd.details["reference_cache_key"] == key and fvd.details["reference_cache_hits"] == 4
    # the merged directory is a finished run: rerunning that configuration there evaluates nothing
    before = (tmp_path / "merged" / R.RESULTS_FILE).read_text()
    capsys.readouterr()
    assert cli("run", *TINY, *extra, f"output_dir={tmp_path / 'merged'}") == 0
    assert "already holds this run, complete; nothing recomputed" in capsys.readouterr().err
    assert (tmp_path / "merged" / R.RESULTS_FILE).read_text() == before


def test_three_way_merge_of_psnr_shards_and_table_skips_shards(tmp_path, capsys):
    want = single(tmp_path / "single", "dataset.num_videos=5")
    out = shards(tmp_path / "split", 3, "dataset.num_videos=5")
    # shard directories may be named one by one, in any order
    dirs = [str(out / f"shard-{i}-of-3") for i in (2, 0, 1)]
    assert cli("merge", *dirs, "-o", str(out)) == 0
    assert_same_values(out, want)
    capsys.readouterr()
    assert cli("table", str(out), "--columns", "psnr", "videos") == 0
    text, err = capsys.readouterr()
    assert text.count("trilinear_488") == 1 and re.search(r"\|\s+5\s+\|", text), text
    assert "shard result(s)" not in err  # merged in place: the merged row stands for them
    capsys.readouterr()
    assert cli("table", str(out / "shard-0-of-3"), "--columns", "psnr") == 2  # alone: nothing to tabulate
    assert "skipped 1 shard result(s)" in capsys.readouterr().err


@register_dataset("_one_broken")
class OneBroken(SyntheticDataset):
    """The synthetic set with synthetic_001 unreadable (a decoder error)."""

    def clips(self, video):
        if video.id == "synthetic_001":
            raise VideoError(f"/data/{video.id}.mp4", "truncated file")
        return super().clips(video)


def test_a_failed_video_is_recorded_once_and_the_merge_is_the_single_run(tmp_path):
    extra = ["dataset=_one_broken", "dataset.num_videos=3"]
    with one_thread():
        assert cli("run", *TINY, *extra, f"output_dir={tmp_path / 'single'}") == 3  # partial, as a run says
        codes = [cli("run", *TINY, *extra, f"shard={i}/2", f"output_dir={tmp_path / 'split'}") for i in range(2)]
    assert codes == [0, 4]  # shard 1 holds only the broken video: nothing scored there
    assert cli("merge", str(tmp_path / "split"), "-o", str(tmp_path / "merged")) == 3
    got, _ = assert_same_values(tmp_path / "merged", tmp_path / "single")
    assert [f.video for f in got.videos.failed] == ["synthetic_001"] and got.run.status == "partial"


def test_merge_names_missing_and_unfinished_shards(tmp_path, capsys):
    out = shards(tmp_path / "split", 4, "dataset.num_videos=4", which=[0, 2, 3])
    err = refused(capsys, "merge", str(out), "-o", str(tmp_path / "m"))
    assert re.search(r"incomplete: missing shard\(s\) 1/4 of 4", err), err
    (out / "shard-2-of-4" / R.RESULTS_FILE).unlink()  # as if it were stopped before its end
    err = refused(capsys, "merge", str(out), "-o", str(tmp_path / "m"))
    assert re.search(r"missing shard\(s\) 1/4, 2/4 of 4; unfinished: .*shard-2-of-4", err), err
    assert not (tmp_path / "m" / R.RESULTS_FILE).exists()


def test_merge_refuses_shards_of_different_runs(tmp_path, capsys):
    a = shards(tmp_path / "a", 2, "dataset.num_videos=2", which=[0])
    b = shards(tmp_path / "b", 2, "dataset.num_videos=2", "tokenizer=identity", which=[1])
    err = refused(capsys, "merge", str(a), str(b), "-o", str(tmp_path / "m"))
    assert re.search(r"different configurations: tokenizer\..*'identity' vs 'trilinear_488'", err), err
    c = shards(tmp_path / "c", 3, "dataset.num_videos=2", which=[1])
    err = refused(capsys, "merge", str(a), str(c), "-o", str(tmp_path / "m"))
    assert re.search("shards of different splits", err), err
    # same configuration, different fingerprint (e.g. other weights or code): refused too
    d = shards(tmp_path / "d", 2, "dataset.num_videos=2", which=[1])
    f = d / "shard-1-of-2" / R.RESULTS_FILE
    doc = json.loads(f.read_text())
    doc["fingerprint"]["config"] = "0" * 64
    f.write_text(json.dumps(doc))
    err = refused(capsys, "merge", str(a), str(d), "-o", str(tmp_path / "m"))
    assert re.search("different config fingerprints", err), err
    err = refused(capsys, "merge", str(a / "shard-0-of-2"), str(a / "shard-0-of-2"), "-o", str(tmp_path / "m"))
    assert re.search(r"shard 0/2 given twice", err), err


def test_a_whole_run_is_not_a_shard_and_shard_dirs_do_not_mix(tmp_path, capsys):
    whole = single(tmp_path / "whole", "dataset.num_videos=2")
    err = refused(capsys, "merge", str(whole), "-o", str(tmp_path / "m"))
    assert re.search("a whole run, not a shard", err), err
    out = shards(tmp_path / "split", 2, "dataset.num_videos=2", which=[0])
    # another shard written into a shard's directory is refused by the store (resume is per shard)
    shutil.copy(out / "shard-0-of-2" / R.RUN_META_FILE, tmp_path / "meta.json")
    meta = json.loads((tmp_path / "meta.json").read_text())
    meta["shard"] = "1/2"
    (out / "shard-0-of-2" / R.RUN_META_FILE).write_text(json.dumps(meta))
    err = refused(capsys, "run", *TINY, "dataset.num_videos=2", "shard=0/2", f"output_dir={out}")
    assert re.search("different configuration", err), err


def test_shards_of_the_additive_metrics_merge_into_the_single_run(tmp_path):
    """codebook (latent statistics of a continuous tokenizer), profile and flicker from two shards equal the
    single run's bit for bit, details included: the shards add their videos' float64 sums in another grouping
    ((v0+v1)+(v2+v3), not ((v0+v1)+v2)+v3), which exact sums make invisible; token counts are exact, see
    test_run_metrics. Each metric's time is the parts' time plus the final computation."""
    extra = ["dataset.num_videos=4", "metrics=[psnr,flicker,codebook,profile]"]
    want = single(tmp_path / "single", *extra)
    out = shards(tmp_path / "split", 2, *extra)
    assert cli("merge", str(out), "-o", str(out)) == 0
    a, b = assert_same_values(out, want)
    for name in ("codebook", "profile"):
        got, want = _flat(a.metrics[name].details), _flat(b.metrics[name].details)
        assert got.keys() == want.keys() and len(want) >= 8, name
        for k, v in want.items():
            assert got[k] == v or (v != v and got[k] != got[k]), (name, k, got[k], v)  # NaN: NaN
    parts = [R.load_result(out / f"shard-{i}-of-2") for i in range(2)]
    for name in a.metrics:
        assert a.metrics[name].time_s >= sum(p.metrics[name].time_s for p in parts) > 0, name


def _flat(obj, prefix: str = "") -> dict:
    """Nested dicts and lists as {"a.b.0": leaf}."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in _flat(val, f"{prefix}{key}.").items()}
    if isinstance(obj, list):
        return {k: v for i, val in enumerate(obj) for k, v in _flat(val, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): obj}


def test_merged_flops_are_the_sum_of_the_parts(tmp_path, monkeypatch):
    """FLOPs add over shards (rates stay per device): a stand-in count of 1000 encode / 3000 decode FLOPs per clip."""
    import vidtok_bench.stages.model as model_stage

    monkeypatch.setattr(model_stage, "meta_flops", lambda tok, shape: {"encode": 1000 * shape[0], "decode": 3000 * shape[0]})
    extra = ["dataset.num_videos=3"]
    want = R.load_result(single(tmp_path / "single", *extra)).throughput
    out = shards(tmp_path / "split", 2, *extra)
    assert cli("merge", str(out), "-o", str(out)) == 0
    got = R.load_result(out).throughput
    assert want.encode_flops == got.encode_flops == 1000 * got.clips and want.decode_flops == got.decode_flops == 3000 * got.clips
    assert got.tflops_per_s == pytest.approx(4000 * got.clips / (got.encode_s + got.decode_s) / 1e12)
    assert got.mfu is None  # CPU: no peak


@pytest.mark.parametrize("meta", [b"garbage", b"[1, 2]", b"\xff\xfe", b'{"fingerprint": {"data": 1}}'])
def test_a_damaged_run_meta_is_named_and_a_rerun_with_overwrite_merges(tmp_path, capsys, meta):
    out = shards(tmp_path / "split", 2, "dataset.num_videos=2")
    (out / "shard-1-of-2" / R.RUN_META_FILE).write_bytes(meta)
    err = refused(capsys, "merge", str(out), "-o", str(tmp_path / "m"))
    assert f"shard-1-of-2/{R.RUN_META_FILE}: not a valid {R.RUN_META_FILE}" in err and "overwrite=true" in err, err
    # what the message says works: the shard's overwrite=true differs from the others' only in how it ran
    shards(out, 2, "dataset.num_videos=2", "overwrite=true", which=[1])
    assert cli("merge", str(out), "-o", str(tmp_path / "m")) == 0


def test_merge_into_another_runs_directory_names_its_own_options(tmp_path, capsys):
    out = shards(tmp_path / "split", 2, "dataset.num_videos=2")
    other = single(tmp_path / "other", "dataset.num_videos=1")
    err = refused(capsys, "merge", str(out), "-o", str(other))
    assert "holds a finished run with a different configuration (dataset.num_videos: 1 there, 2 now" in err, err
    assert "another -o directory" in err, err
    assert "overwrite=true" not in err  # a `run` option: merge has none
    assert R.load_result(other).videos.total == 1
    (other / R.RUN_META_FILE).write_text("x")
    err = refused(capsys, "merge", str(out), "-o", str(other))
    assert "configuration is unknown" in err and "another -o directory" in err, err


def test_undecodable_per_clip_lines_are_skipped_by_merge(tmp_path):
    out = shards(tmp_path / "split", 2, "dataset.num_videos=2")
    log = out / "shard-1-of-2" / R.PER_CLIP_FILE
    log.write_bytes(b"\xff\xfe torn\n" + log.read_bytes() + b"\xff")
    assert cli("merge", str(out), "-o", str(tmp_path / "m")) == 0
    assert R.load_result(tmp_path / "m").videos.ok == 2


def test_merge_output_errors_name_its_own_option(tmp_path):
    from vidtok_bench.errors import ConfigError
    from vidtok_bench.stages.store import RunStore

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(ConfigError, match=rf"^-o {afile}: cannot write there"):
        RunStore(afile, option="-o ").lock()
    with pytest.raises(ConfigError, match=rf"^output_dir={afile}: cannot write there"):
        RunStore(afile).lock()


def test_decoding_threads_never_make_another_run(tmp_path, capsys):
    """dataset.workers (threads converting one video's frames) changes no value: shards decoded with other counts
    merge, a rerun with another count finds its run, and the fingerprints and default directory stay the same."""
    from vidtok_bench.config import compose
    from vidtok_bench.runner import Runner

    want = single(tmp_path / "single", "dataset.num_videos=2")
    out = tmp_path / "split"
    with one_thread():
        for i, workers in ((0, 1), (1, 2)):
            assert cli("run", *TINY, "dataset.num_videos=2", f"shard={i}/2", f"dataset.workers={workers}",
                       f"output_dir={out}") == 0
    assert cli("merge", str(out), "-o", str(out)) == 0
    assert_same_values(out, want)
    assert R.load_result(out).fingerprint == R.load_result(want).fingerprint
    capsys.readouterr()
    assert cli("run", *TINY, "dataset.num_videos=2", "dataset.workers=3", f"output_dir={want}") == 0
    assert "already holds this run, complete" in capsys.readouterr().err
    dirs = {Runner(compose([*TINY, *extra])).default_output_dir() for extra in ([], ["dataset.workers=2"])}
    assert len(dirs) == 1


def test_parts_that_ran_different_code_are_named_in_the_merged_environment(tmp_path, capsys):
    """A merged result records one environment; when the shards ran other versions or commits, each part's value is
    kept (and said) instead of the first part's standing for all."""
    out = shards(tmp_path / "split", 2, "dataset.num_videos=2")
    r1 = out / "shard-1-of-2" / R.RESULTS_FILE
    doc = json.loads(r1.read_text())
    doc["environment"]["git_commit"] = "0" * 40
    doc["environment"]["packages"]["torch"] = "2.0.0"
    r1.write_text(json.dumps(doc))
    capsys.readouterr()
    assert cli("merge", str(out), "-o", str(tmp_path / "m")) == 0
    assert "the parts ran different code (git_commit, packages.torch)" in capsys.readouterr().err
    env = R.load_result(tmp_path / "m").environment
    first = json.loads((out / "shard-0-of-2" / R.RESULTS_FILE).read_text())["environment"]
    assert env["parts_differ"] == {"git_commit": {"0": first["git_commit"], "1": "0" * 40},
                                   "packages.torch": {"0": first["packages"]["torch"], "1": "2.0.0"}}
    assert cli("merge", str(shards(tmp_path / "same", 2, "dataset.num_videos=2")), "-o", str(tmp_path / "m2")) == 0
    assert "parts_differ" not in R.load_result(tmp_path / "m2").environment
