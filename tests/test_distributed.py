"""Many processes, one result: the split, liveness, and torchrun (gloo, CPU) ranks against a
single-process run of the same configuration — every per-clip value and FVD compared exactly."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from _split_runs import FVD_9, assert_same_values, records, single, torchrun
from _weights_fixture import seeded_cache_dir
from vidtok_bench import results as R
from vidtok_bench.data import VideoRef
from vidtok_bench.distributed import (DistEnv, DistributedError, RankWatch, frame_counts, parse_shard,
                                      shard_videos)
from vidtok_bench.errors import ConfigError


# ----------------------------------------------------------------------------- the split
@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(1, 500), min_size=0, max_size=30), world=st.integers(1, 8))
def test_split_covers_every_video_once_balanced_and_deterministic(counts, world):
    videos = [f"v{i}" for i in range(len(counts))]
    parts = [shard_videos(videos, counts, r, world) for r in range(world)]
    assert sorted(v for p in parts for v in p) == sorted(videos)  # none lost, none twice
    for p in parts:
        assert p == [v for v in videos if v in p]  # dataset order kept
    assert parts == [shard_videos(videos, counts, r, world) for r in range(world)]
    loads = [sum(counts[videos.index(v)] for v in p) for p in parts]
    # longest-first greedy: the most and least loaded parts differ by at most one video
    assert max(loads) - min(loads) <= (max(counts) if counts else 0)


def test_split_balances_frames_not_video_counts():
    videos = ["long", "a", "b", "c", "d", "mid"]
    counts = [100, 10, 10, 10, 10, 60]
    assert shard_videos(videos, counts, 0, 2) == ["long"]
    assert shard_videos(videos, counts, 1, 2) == ["a", "b", "c", "d", "mid"]
    # more ranks than videos: the extra ranks get nothing
    assert [shard_videos(videos[:2], counts[:2], r, 4) for r in range(4)] == [["long"], ["a"], [], []]


def test_frame_counts_from_metadata_else_equal(shared_videos):
    ds = object()
    meta = [VideoRef("a", meta={"num_frames": 48}), VideoRef("b", meta={"frame_range": (10, 30)}),
            VideoRef("c", meta={"frames": 7})]
    assert frame_counts(ds, meta) == [48, 20, 7]
    path = sorted(shared_videos.glob("*.mp4"))[0]
    import av

    with av.open(str(path)) as c:
        n = c.streams.video[0].frames
    assert frame_counts(ds, [VideoRef("f", path=str(path))]) == [n]
    # one video without a count: equal weights for all (still deterministic)
    assert frame_counts(ds, [*meta, VideoRef("x")]) == [1, 1, 1, 1]


@pytest.mark.parametrize("text", ["2/2", "a/b", "-1/2", "1", "1/0"])
def test_bad_shard_is_a_config_error(text):
    with pytest.raises(ConfigError, match="shard="):
        parse_shard(text)


def test_shard_and_env_parsing():
    assert parse_shard("1/3") == (1, 3) and parse_shard(None) is None
    assert DistEnv.from_environ({}) is None
    assert DistEnv.from_environ({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}) == DistEnv(2, 4, 0)
    with pytest.raises(ConfigError):
        DistEnv.from_environ({"RANK": "4", "WORLD_SIZE": "4"})


# ----------------------------------------------------------------------------- liveness
def _store():
    import torch.distributed as dist

    return dist.HashStore()


def test_wait_all_returns_once_every_rank_is_done():
    store = _store()
    watches = [RankWatch(store, r, 2, timeout=5, interval=0.05).start() for r in range(2)]
    watches[0].done()
    threading.Timer(0.3, watches[1].done).start()
    t0 = time.monotonic()
    watches[0].wait_all(poll=0.02)
    assert time.monotonic() - t0 >= 0.25
    for w in watches:
        w.stop()


def test_a_silent_rank_ends_the_wait_with_its_number():
    store = _store()
    me = RankWatch(store, 0, 3, timeout=0.5, interval=0.05).start()
    alive = RankWatch(store, 1, 3, timeout=0.5, interval=0.05).start()  # beats but never finishes: still waited for
    store.add("vidtok-bench/beat/2", 1)  # rank 2 beat once, then died
    me.done()
    t0 = time.monotonic()
    with pytest.raises(DistributedError, match="rank 2 stopped answering"):
        me.wait_all(poll=0.02)
    assert time.monotonic() - t0 < 5
    me.stop()
    alive.stop()


def test_a_failed_rank_ends_the_wait_with_its_error():
    store = _store()
    me, other = (RankWatch(store, r, 2, timeout=30, interval=0.05).start() for r in range(2))
    other.failed("CUDA out of memory")
    with pytest.raises(DistributedError, match="rank 1 failed: CUDA out of memory"):
        me.wait_all(poll=0.02)
    me.stop()
    other.stop()


# ----------------------------------------------------------------------------- torchrun
def _shards(out: Path) -> list[R.Result]:
    return [R.load_result(d) for d in sorted(out.glob("shard-*-of-*"))]


def test_two_ranks_uneven_split_equal_the_single_run(tmp_path):
    want = single(tmp_path / "single", "dataset.num_videos=3")
    proc = torchrun(2, tmp_path / "dist", "dataset.num_videos=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, _ = assert_same_values(tmp_path / "dist", want)
    parts = _shards(tmp_path / "dist")
    assert [len(p.shard.videos) for p in parts] == [2, 1]  # 3 videos on 2 ranks
    assert got.distributed.mode == "torchrun" and got.distributed.backend == "gloo" and got.distributed.count == 2
    assert [p.videos for p in got.distributed.parts] == [2, 1]
    # throughput and memory: per rank and in total
    assert got.throughput.frames == sum(p.throughput.frames for p in got.distributed.parts) == 3 * 17
    assert got.distributed.total_frames_per_s == pytest.approx(sum(p.throughput.frames_per_s for p in got.distributed.parts))
    assert got.distributed.total_peak_bytes == sum(p.memory.peak_bytes for p in got.distributed.parts)
    assert got.shard is None and got.config["shard"] is None


def test_more_ranks_than_videos_with_fvd_equal_the_single_run(tmp_path, tmp_path_factory, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "weights").symlink_to(seeded_cache_dir(tmp_path_factory) / "weights")
    monkeypatch.setenv("VIDTOK_BENCH_CACHE", str(cache))
    # 2 videos of 34 frames: 4 clips of 17, on 3 ranks (rank 2 has nothing to do)
    extra = ["dataset.num_videos=2", "dataset.num_frames=34", "metrics=[psnr,ssim,fvd]", *FVD_9]
    want = single(tmp_path / "single", *extra)
    proc = torchrun(3, tmp_path / "dist", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, ref = assert_same_values(tmp_path / "dist", want)
    assert got.metrics["fvd"].clips == 4 and got.metrics["fvd"].value is not None
    assert [len(p.shard.videos) for p in _shards(tmp_path / "dist")] == [1, 1, 0]
    # the ranks took the reference features the single run cached (same key, nothing recomputed)
    key = ref.metrics["fvd"].details["reference_cache_key"]
    assert key and got.metrics["fvd"].details["reference_cache_key"] == key
    assert ref.metrics["fvd"].details["reference_cache_hits"] == 0
    assert got.metrics["fvd"].details["reference_cache_hits"] == 4


def test_a_killed_rank_keeps_finished_work_and_a_rerun_resumes(tmp_path):
    want = single(tmp_path / "single", "dataset.num_videos=3")
    out = tmp_path / "dist"
    done_1 = out / "shard-1-of-2" / R.RESULTS_FILE
    # rank 0 owns synthetic_000 and synthetic_002, rank 1 synthetic_001: once rank 1 has finished its part,
    # rank 0 dies (SIGKILL) right after storing its first video
    kill = {"VIDTOK_TEST_KILL": f"0:synthetic_000:{done_1}"}
    proc = torchrun(2, out, "dataset.num_videos=3", env=kill, timeout=300)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "rank 1: terminated by the launcher" in err and "rerun the same command to resume" in err, err[-3000:]
    assert not (out / R.RESULTS_FILE).exists()
    assert [r["video"] for r in records(out / "shard-0-of-2")] == ["synthetic_000"]  # finished work kept
    finished_1 = done_1.read_text()
    proc = torchrun(2, out, "dataset.num_videos=3", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got, _ = assert_same_values(out, want)
    # only synthetic_002 was evaluated again: rank 0 resumed synthetic_000, rank 1's part was complete
    assert got.videos.resumed == 1 and R.load_result(out / "shard-0-of-2").videos.resumed == 1
    assert done_1.read_text() == finished_1
    assert os.path.getsize(out / R.PER_CLIP_FILE) > 0


def test_a_finished_run_is_kept_by_a_torchrun_rerun_with_any_number_of_ranks(tmp_path):
    """Rerunning a finished run keeps it (README) also when the rerun is split another way: nothing is evaluated."""
    out = single(tmp_path / "o", "dataset.num_videos=3")
    before = (out / R.RESULTS_FILE).read_bytes()
    proc = torchrun(2, out, "dataset.num_videos=3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "already holds this run, complete; nothing recomputed" in proc.stderr
    assert (out / R.RESULTS_FILE).read_bytes() == before
    assert not list(out.glob("shard-*"))


def test_another_runs_directory_is_refused_before_any_rank_works_and_overwrite_replaces_it(tmp_path):
    """As a single run: refused at the start (not after every rank evaluated its part), in run's words, once;
    overwrite=true replaces it (merge's refusal used to end every such torchrun run, overwrite or not)."""
    out = single(tmp_path / "o", "tokenizer=identity", "dataset.num_videos=2")
    proc = torchrun(2, out, "dataset.num_videos=2")
    assert proc.returncode != 0
    assert proc.stderr.count("vidtok-bench: error: ") == 1, proc.stderr[-3000:]
    assert (f"vidtok-bench: error: output_dir={out} holds a finished run with a different configuration "
            "(tokenizer.name: 'identity' there, 'trilinear_488' now") in proc.stderr
    assert "pass overwrite=true to replace it" in proc.stderr and not list(out.glob("shard-*"))
    proc = torchrun(2, out, "dataset.num_videos=2", "overwrite=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_values(out, single(tmp_path / "single", "dataset.num_videos=2"))


def test_resume_false_over_a_finished_run_is_refused_as_a_single_run_refuses_it(tmp_path):
    """resume=false never replaces finished work without overwrite=true, however the rerun is split."""
    out = single(tmp_path / "o", "dataset.num_videos=2")
    before = (out / R.RESULTS_FILE).read_bytes()
    proc = torchrun(2, out, "dataset.num_videos=2", "resume=false")
    assert proc.returncode != 0 and proc.stderr.count("vidtok-bench: error: ") == 1, proc.stderr[-3000:]
    assert f"output_dir={out} holds work of this configuration and resume=false; pass overwrite=true" in proc.stderr
    assert (out / R.RESULTS_FILE).read_bytes() == before
