"""`vidtok-bench run -m ...`: sweeps through Hydra's launchers, one directory per job, resumable,
collected by `vidtok-bench table`; a tokenizers x shards array merged per tokenizer."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from _split_runs import TINY, assert_same_values, cli, single
from vidtok_bench import results as R


def _job_dirs(sweep) -> dict[str, R.Result]:
    return {r.tokenizer.name: r for r in (R.load_result(p) for p in sorted(sweep.rglob(R.RESULTS_FILE)))}


def test_submitit_local_sweep_of_two_tokenizers_collected_by_table(tmp_path, capsys):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "sweep"
    args = ["run", "-m", *TINY, "tokenizer=identity,trilinear_488", "dataset.num_videos=2", "metrics=[psnr]",
            f"output_dir={sweep}", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10"]
    assert cli(*args) == 0
    jobs = _job_dirs(sweep)
    assert set(jobs) == {"identity", "trilinear_488"}
    # one directory per job, named by its overrides
    assert {p.run_dir.name for p in jobs.values()} == {
        "dataset.height=32,dataset.num_frames=17,dataset.num_videos=2,dataset.size=32,dataset.width=32,"
        f"dataset=synthetic,device=cpu,metrics=[psnr],tokenizer={t}" for t in ("identity", "trilinear_488")}
    # each job is the run its overrides describe
    want = R.load_result(single(tmp_path / "one", "tokenizer=trilinear_488", "dataset.num_videos=2", "metrics=[psnr]"))
    assert jobs["trilinear_488"].value("psnr") == want.value("psnr")
    assert jobs["identity"].value("psnr") == pytest.approx(80.0)
    capsys.readouterr()
    assert cli("table", str(sweep), "--columns", "psnr") == 0
    table = capsys.readouterr().out
    assert re.search(r"\| identity\s+\|", table) and re.search(r"\| trilinear_488\s+\|", table)
    # the same sweep again finds every job complete: nothing is evaluated or rewritten
    dates = {t: r.run.date for t, r in jobs.items()}
    assert cli(*args) == 0
    assert {t: r.run.date for t, r in _job_dirs(sweep).items()} == dates


def test_basic_launcher_array_over_tokenizers_and_shards_then_merge(tmp_path):
    sweep = tmp_path / "sweep"
    assert cli("run", "-m", *TINY, "tokenizer=identity,trilinear_488", "shard=0/2,1/2", "dataset.num_videos=3",
               f"output_dir={sweep}") == 0
    dirs = sorted(p for p in sweep.iterdir() if p.is_dir())
    # the shards of one job share its directory (shard is not part of the name)
    assert [sorted(x.name for x in d.iterdir() if x.is_dir()) for d in dirs] == [["shard-0-of-2", "shard-1-of-2"]] * 2
    for d in dirs:
        tokenizer = d.name.rsplit("tokenizer=", 1)[1]
        assert cli("merge", str(d), "-o", str(d)) == 0
        assert_same_values(d, single(tmp_path / tokenizer, f"tokenizer={tokenizer}", "dataset.num_videos=3"))


def test_hydra_settings_without_m_are_refused(tmp_path, capsys):
    assert cli("run", *TINY, "hydra/launcher=submitit_local", f"output_dir={tmp_path}") == 2
    assert "add -m" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["batch_size=1,0"], ["tokenizer=identity,nosuch"], ["seed=range(0,2)", "+nokey=1"],
                                 ["tokenizer=trilinear_488", "tokenizer.h=8,abc"], ["tokenizer=trilinear_488", "dataset.size=32,30"],
                                 ["dataset.num_videos=1,-1"]])
def test_a_bad_job_is_one_line_before_any_job_runs(tmp_path, capsys, bad):
    sweep = tmp_path / "sweep"
    assert cli("run", "-m", *TINY, *bad, f"output_dir={sweep}") == 2
    err = capsys.readouterr().err
    assert err.startswith("vidtok-bench: error: sweep job ") and err.count("\n") == 1, err
    assert not sweep.exists()  # the first, valid job did not run either


def test_jobs_expand_as_hydra_expands_them():
    from vidtok_bench.sweep import job_overrides

    jobs = job_overrides(["tokenizer=identity,trilinear_488", "seed=range(0,2)", "limit=1", "hydra/launcher=submitit_local"])
    assert jobs == [["tokenizer=identity", "seed=0", "limit=1"], ["tokenizer=identity", "seed=1", "limit=1"],
                    ["tokenizer=trilinear_488", "seed=0", "limit=1"], ["tokenizer=trilinear_488", "seed=1", "limit=1"]]


@pytest.mark.parametrize("bad", [["tokenizer=glob(*)"], ["tokenizer=identity,trilinear_488", "output_dir=AFILE"]])
def test_a_sweep_it_cannot_expand_or_write_is_one_line(tmp_path, capsys, bad):
    afile = tmp_path / "afile"
    afile.write_text("x")
    args = [a.replace("AFILE", str(afile)) for a in bad]
    assert cli("run", "-m", *TINY, *(args if any(a.startswith("output_dir=") for a in args)
                                     else [*args, f"output_dir={tmp_path / 's'}"])) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidtok-bench: error: ") and err.count("\n") == 1, err


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks a GPU sweep submitted from a CPU-only host")
def test_a_slurm_sweep_of_gpu_jobs_is_checked_on_a_login_node_without_gpus(tmp_path):
    from vidtok_bench.errors import ConfigError
    from vidtok_bench.sweep import check_jobs

    jobs, sweep = [*TINY, "tokenizer=identity,trilinear_488", "device=cuda"], tmp_path / "sweep"
    assert check_jobs([*jobs, "hydra/launcher=submitit_slurm"], sweep) == 2  # the device is checked where the jobs run
    with pytest.raises(ConfigError, match="CUDA is not available"):
        check_jobs(jobs, sweep)  # the basic launcher runs them here
    with pytest.raises(ConfigError, match="batch_size=0"):
        check_jobs([*jobs, "batch_size=0", "hydra/launcher=submitit_slurm"], sweep)  # the rest is still checked


def test_a_sweep_exits_with_its_worst_jobs_status_in_one_line_each(tmp_path, capsys, monkeypatch, shared_videos):
    """A job that fails (here: its checkpoint cannot load) or scores only some videos makes the sweep's exit
    status what a run's would be, without Hydra's traceback; the other jobs still run."""
    import os

    from vidtok_bench.errors import CheckpointError
    from vidtok_bench.runner import Runner

    run_result = Runner.run_result

    def no_weights_for_identity(self):
        if self.tokenizer.name == "identity":
            raise CheckpointError("identity.ckpt: checkpoint file not found")
        return run_result(self)

    monkeypatch.setattr(Runner, "run_result", no_weights_for_identity)
    root = tmp_path / "v"
    root.mkdir()
    os.symlink(shared_videos / "vidtok_example_256x256.mp4", root / "a.mp4")
    (root / "b.mp4").write_bytes(b"")  # broken: that job is partial
    sweep = tmp_path / "sweep"
    args = ["run", "-m", "tokenizer=identity,trilinear_488", "dataset=folder", f"dataset.root={root}",
            "dataset.max_frames=17", "dataset.size=32", "metrics=[psnr]", "device=cpu", "progress=false",
            f"output_dir={sweep}"]
    assert cli(*args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "vidtok-bench: error: identity.ckpt: checkpoint file not found" in err
    assert re.search(r"2 of 2 sweep job\(s\) did not end cleanly: tokenizer=identity .*\(exit 2\); "
                     r"tokenizer=trilinear_488 .*\(exit 3\)", err), err
    assert cli(*args[:2], "tokenizer=trilinear_488", *args[3:]) == 3  # that job alone: partial, as its run says


def test_settings_that_never_change_values_stay_out_of_job_directories(tmp_path):
    """A sweep rerun with more decode workers, or with overwrite=true, is the same jobs in the same
    directories, as a run with them is the same run (one list of such keys: config.RUNTIME_OVERRIDE_KEYS)."""
    sweep = tmp_path / "sweep"
    assert cli("run", "-m", *TINY, "tokenizer=identity,trilinear_488", "dataset.num_videos=1", "metrics=[psnr]",
               f"output_dir={sweep}") == 0
    before = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert cli("run", "-m", *TINY, "tokenizer=identity,trilinear_488", "dataset.num_videos=1", "metrics=[psnr]",
               "workers=2", "dataset.workers=1", "overwrite=true", "prefetch=1", f"output_dir={sweep}") == 0
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == before


def test_a_job_whose_settings_make_a_long_name_gets_a_short_hashed_directory(tmp_path):
    """File systems take 255 bytes per name: a long setting (a deep dataset.root, a long name) keeps the first
    part readable and ends in a hash of the whole, so each job still has its own directory and a rerun finds it."""
    from vidtok_bench.sweep import MAX_DIRNAME_BYTES, _dirname

    long_a, long_b = "dataset.name=" + "é" * 150 + "a", "dataset.name=" + "é" * 150 + "b"
    assert _dirname("tokenizer=identity") == "tokenizer=identity"
    names = {_dirname(long_a), _dirname(long_b)}
    assert len(names) == 2 and all(len(n.encode()) <= MAX_DIRNAME_BYTES for n in names)
    assert _dirname(long_a) == _dirname(long_a) and _dirname(long_a).startswith("dataset.name=éé")
    sweep = tmp_path / "sweep"
    args = ("run", "-m", *TINY, "tokenizer=identity,trilinear_488", "dataset.num_videos=1", "metrics=[psnr]",
            "dataset.name=" + "n" * 300, f"output_dir={sweep}")
    assert cli(*args) == 0
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2 and all(len(j.encode()) <= MAX_DIRNAME_BYTES for j in jobs), jobs
    assert cli(*args) == 0 and sorted(p.name for p in sweep.iterdir() if p.is_dir()) == jobs


@pytest.mark.parametrize("hydra, needle", [
    (["hydra/launcher=submitit_slrum"], "hydra/launcher=submitit_slrum: unknown launcher (did you mean 'submitit_slurm'?)"),
    (["hydra/launcher=submitit_slurm", "hydra.launcher.partiton=gpu"],
     "unknown key 'hydra.launcher.partiton' (did you mean 'partition'?); hydra.launcher keys: "),
    (["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=abc"],
     "invalid Hydra setting: hydra.launcher.timeout_min=abc: Value 'abc' of type 'str' could not be converted to Integer"),
    (["hydra/launcher=submitit_slurm"], "hydra/launcher=submitit_slurm: Slurm's srun is not on this machine's PATH"),
])
def test_a_launcher_or_launcher_setting_that_cannot_work_is_one_line_before_any_job(tmp_path, capsys, monkeypatch,
                                                                                     hydra, needle):
    """Not Hydra's multi-line report or submitit's traceback with exit 1: a usage error, exit 2, nothing run."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    monkeypatch.setenv("PATH", str(tmp_path))  # no Slurm here (nor on the test machines)
    sweep = tmp_path / "sweep"
    assert cli("run", "-m", *TINY, "tokenizer=identity,trilinear_488", *hydra, f"output_dir={sweep}") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vidtok-bench: error: {needle}") and err.count("\n") == 1, err
    assert not sweep.exists()


def test_cfg_with_m_shows_each_job_its_directory_and_the_launcher_and_runs_nothing(tmp_path, capsys):
    """`run -m --cfg` checks a Slurm sweep before it is submitted: it must never run or submit it."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    import yaml

    sweep = tmp_path / "sweep"
    assert cli("run", "-m", "--cfg", "tokenizer=identity,trilinear_488", "shard=0/2,1/2", "workers=1",
               f"output_dir={sweep}", "hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu",
               "hydra.launcher.timeout_min=240") == 0
    out = capsys.readouterr().out
    assert not sweep.exists()
    heads = re.findall(r"^# job (\d) of 4: (.*) -> (.*)$", out, re.M)
    assert [(h[1], h[2]) for h in heads] == [
        (f"tokenizer={t} shard={s}/2 workers=1", str(sweep / f"tokenizer={t}" / f"shard-{s}-of-2"))
        for t in ("identity", "trilinear_488") for s in (0, 1)]
    jobs = [yaml.safe_load(part) for part in re.split(r"^# .*$", out, flags=re.M)[1:]]
    assert [(j["tokenizer"]["name"], j["shard"]) for j in jobs[:4]] == [
        ("identity", "0/2"), ("identity", "1/2"), ("trilinear_488", "0/2"), ("trilinear_488", "1/2")]
    launcher = jobs[4]
    assert "# hydra.launcher (submitit_slurm)" in out
    assert (launcher["partition"], launcher["timeout_min"], launcher["name"]) == ("gpu", 240, "vidtok-bench")
    assert launcher["submitit_folder"] == f"{sweep}/.submitit"


def test_a_job_that_meets_a_full_disk_is_one_line_and_the_sweep_exits_5(tmp_path, capsys, monkeypatch):
    """As `run` does (exit 5, finished videos kept): not Hydra's traceback and exit 1 for the whole sweep."""
    import errno

    from vidtok_bench.runner import Runner

    run_result = Runner.run_result

    def full_disk_for_identity(self):
        if self.tokenizer.name == "identity":
            raise OSError(errno.ENOSPC, "No space left on device", str(self.store.clip_log))
        return run_result(self)

    monkeypatch.setattr(Runner, "run_result", full_disk_for_identity)
    sweep = tmp_path / "sweep"
    assert cli("run", "-m", *TINY, "tokenizer=identity,trilinear_488", "dataset.num_videos=1", "metrics=[psnr]",
               f"output_dir={sweep}") == 5
    err = capsys.readouterr().err
    assert "Traceback" not in err and "cannot write in " in err and "No space left on device" in err, err
    assert re.search(r"1 of 2 sweep job\(s\) did not end cleanly: tokenizer=identity .*\(exit 5\)", err), err
    assert len(list(sweep.rglob(R.RESULTS_FILE))) == 1  # the other job ran


def test_a_sweep_over_a_speed_setting_gets_a_directory_per_value_and_output_dir_is_not_swept(tmp_path, capsys):
    """workers=1,2 measures speed: each value is its own job (left out of the names, every job after the first
    would find the first's result and do nothing). output_dir=a,b would be ignored: refused instead."""
    sweep = tmp_path / "sweep"
    assert cli("run", "-m", *TINY, "tokenizer=identity", "dataset.num_videos=1", "metrics=[psnr]", "workers=1,2",
               "prefetch=2", f"output_dir={sweep}") == 0
    assert sorted(p.name.rsplit(",", 1)[1] for p in sweep.iterdir() if p.is_dir()) == ["workers=1", "workers=2"]
    assert all(R.load_result(p).throughput.clips == 1 for p in sweep.iterdir() if p.is_dir())  # each job evaluated
    capsys.readouterr()
    assert cli("run", "-m", *TINY, "tokenizer=identity", f"output_dir={tmp_path / 'a'},{tmp_path / 'b'}") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vidtok-bench: error: output_dir={tmp_path / 'a'},{tmp_path / 'b'}: a sweep has one "
                          "output_dir") and err.count("\n") == 1, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_job_killed_where_it_ran_is_named_and_the_sweep_exits_143_then_resumes(tmp_path, capsys, monkeypatch):
    """A job the OOM killer, a time limit or a lost node ended reports nothing; the launcher (submitit) raises. The
    sweep names it in one line, not submitit's traceback and exit 1, and a rerun resumes it."""
    utils = pytest.importorskip("submitit.core.utils")
    from hydra.core.hydra_config import HydraConfig

    from vidtok_bench import sweep as S

    real_job = S.job

    def killed_for_identity(cfg):
        # as a SIGKILL leaves the identity job: a run begun, no result, no status
        if HydraConfig.get().runtime.choices["tokenizer"] == "identity":
            out = Path(HydraConfig.get().runtime.output_dir)
            out.mkdir(parents=True, exist_ok=True)
            (out / R.PER_CLIP_FILE).write_text("")
            raise utils.UncompletedJobError("Job 7 (task: 0) with path x/7_0_result.pkl\nhas not produced any output")
        return real_job(cfg)

    monkeypatch.setattr(S, "job", killed_for_identity)
    sweep = tmp_path / "sweep"
    args = ["run", "-m", *TINY, "tokenizer=identity,trilinear_488", "dataset.num_videos=1", "metrics=[psnr]",
            f"output_dir={sweep}"]
    assert cli(*args) == 143
    err = capsys.readouterr().err
    assert err.count("UncompletedJobError") == 1, err  # in the one line below, never in a traceback
    line = [x for x in err.splitlines() if "did not finish" in x]
    assert len(line) == 1 and line[0].startswith("vidtok-bench: 1 of 2 sweep job(s) did not finish, e.g. ")
    assert "tokenizer=identity (UncompletedJobError: Job 7 (task: 0) " in line[0] and "rerun the same sweep" in line[0]
    monkeypatch.setattr(S, "job", real_job)
    assert cli(*args) == 0
    assert len(list(sweep.rglob(R.RESULTS_FILE))) == 2
