"""Bad input to `vidtok-bench profile` and `profile-plot`: one line, exit 2, before any point is measured;
a sweep stopped part-way keeps the points it measured."""
from __future__ import annotations

import json
import os
import shutil
import signal

import pytest

from vidtok_bench import profile
from vidtok_bench.cli import main
from vidtok_bench.profile import ERROR, OK

SMALL = ["tokenizer=identity", "sizes=[32]", "frames=[5]", "repeats=1", "warmup=0", "device=cpu", "plot=false"]


@pytest.fixture
def no_measuring(monkeypatch):
    """Fails the test if any point is measured: bad input must be refused first."""
    def measured(*a, **k):
        raise AssertionError("a point was measured before the bad input was refused")

    monkeypatch.setattr(profile, "profile_point", measured)


def _error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("where", ["-o", "output_dir", "parent"])
def test_unusable_output_folder_is_refused_before_measuring(tmp_path, capsys, no_measuring, where) -> None:
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    target = afile / "sub" if where == "parent" else afile
    args = ["-o", str(target)] if where != "output_dir" else [f"output_dir={target}"]
    assert main(["profile", *SMALL, *args]) == 2
    err = _error_line(capsys)
    assert f"cannot write results to {target}" in err
    assert afile.read_text() == "not a folder"


@pytest.mark.parametrize("arg, says", [
    ("max_memory_gb=-1", "max_memory_gb=-1 must be a number > 0"),
    ("max_memory_gb=0", "max_memory_gb=0 must be a number > 0"),
    ("max_memory_gb=nan", "max_memory_gb=nan must be a number > 0"),
    ("aspect=inf", "aspect=inf must be a number > 0"),
    ("plot=maybe", "plot='maybe' must be true or false"),
    ("cudnn_benchmark=maybe", "cudnn_benchmark='maybe' must be true or false"),
    ("tiling=[maybe,true]", "tiling='maybe' must be true or false"),
    ("tiling=[true,true]", "tiling=[true, true] must list some of null, false, true, each once"),
    ("tiling=[]", "tiling=[] must list"),
    ("sizes=[32.5]", "sizes=32.5 must be an integer >= 1"),
    ("frames=abc", "frames='abc' must be an integer >= 1"),
    ("repeats=true", "repeats=True must be an integer >= 1"),
    ("warmup=-1", "warmup=-1 must be an integer >= 0"),
    ("output_dir=[a,b]", "output_dir=['a', 'b'] must be a folder path"),
])
def test_bad_values_are_refused_in_one_line(tmp_path, capsys, no_measuring, arg, says) -> None:
    assert main(["profile", *SMALL, arg, "-o", str(tmp_path / "out")]) == 2
    assert says in _error_line(capsys)


@pytest.mark.parametrize("tiling", ["[false]", "[false,true]"])
def test_tiling_on_a_tokenizer_without_tiling_is_an_error_either_way(tmp_path, capsys, no_measuring, tiling) -> None:
    """trilinear_488 has no tiling option: one value and several are the same error (not a sweep of n/a points)."""
    args = ["tokenizer=trilinear_488", *SMALL[1:], f"tiling={tiling}", "-o", str(tmp_path)]
    assert main(["profile", *args]) == 2
    assert "tokenizer 'trilinear_488' has no option 'tiling'" in _error_line(capsys)
    assert not (tmp_path / "profile.json").exists()


def test_a_failed_point_exits_1_with_every_point_written(tmp_path, capsys, monkeypatch) -> None:
    real = profile.profile_point
    calls = iter([False, True])

    def second_fails(*a, **k):
        return {"status": ERROR, "note": "ValueError: boom"} if next(calls) else real(*a, **k)

    monkeypatch.setattr(profile, "profile_point", second_fails)
    assert main(["profile", *SMALL[:1], "sizes=[32,64]", *SMALL[2:], "-o", str(tmp_path)]) == 1
    points = json.loads((tmp_path / "profile.json").read_text())["points"]
    assert [p["status"] for p in points] == [OK, ERROR]
    assert "1/2 points measured" in capsys.readouterr().out


def test_an_interrupted_sweep_keeps_the_points_done(tmp_path, capsys, monkeypatch) -> None:
    real = profile.profile_point
    calls = iter([False, True])

    def interrupted_at_second(*a, **k):
        if next(calls):
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(profile, "profile_point", interrupted_at_second)
    assert main(["profile", *SMALL[:1], "sizes=[32,64]", *SMALL[2:], "-o", str(tmp_path)]) == 130
    res = json.loads((tmp_path / "profile.json").read_text())
    assert [p["status"] for p in res["points"]] == [OK] and res["incomplete"] is True
    assert "stopped before its last point" in (tmp_path / "profile.md").read_text()
    err = capsys.readouterr().err
    assert "a profile does not resume" in err and "rerun the same command to resume" not in err


def test_a_sigterm_sweep_keeps_the_points_done_and_exits_143(tmp_path, capsys, monkeypatch) -> None:
    """A scheduler's SIGTERM (a real signal to this process) stops the sweep as Ctrl-C does, with 143."""
    real = profile.profile_point
    calls = iter([False, True])

    def terminated_at_second(*a, **k):
        if next(calls):
            os.kill(os.getpid(), signal.SIGTERM)  # the CLI's handler raises in this (the main) thread
        return real(*a, **k)

    monkeypatch.setattr(profile, "profile_point", terminated_at_second)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["profile", *SMALL[:1], "sizes=[32,64]", *SMALL[2:], "-o", str(tmp_path)]) == 143
    assert signal.getsignal(signal.SIGTERM) is before  # the CLI put the previous handler back
    res = json.loads((tmp_path / "profile.json").read_text())
    assert [p["status"] for p in res["points"]] == [OK] and res["incomplete"] is True
    err = capsys.readouterr().err
    assert "terminated (SIGTERM)" in err and "Traceback" not in err


# ----------------------------------------------------------------- profile-plot
@pytest.fixture(scope="module")
def profile_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    args = ["run", "tokenizer=identity", "dataset=synthetic", "dataset.num_videos=1", "dataset.num_frames=9",
            "dataset.size=32", "dataset.height=32", "dataset.width=32", "metrics=[psnr,profile]", "progress=false",
            "device=cpu", f"output_dir={run_dir}"]
    assert main(args) == 0
    return run_dir


@pytest.mark.parametrize("edit, says", [
    (lambda d: d.update(profiles="x"), "details.profiles: expected an object of profiles, got string"),
    (lambda d: d["profiles"].update(psnr_by_position=None), "profiles.psnr_by_position: expected an object, got null"),
    (lambda d: d["profiles"]["psnr_by_position"].update(means="abc"), "psnr_by_position: means must be a list of numbers"),
    (lambda d: d["profiles"]["psnr_by_position"].update(counts=[1]), "psnr_by_position: counts must be a list of "),
    (lambda d: d["profiles"]["psnr_by_position"].update(plot=3), "psnr_by_position: plot=3 must name the series"),
])
def test_profile_plot_names_a_malformed_profile_in_one_line(tmp_path, capsys, profile_run, edit, says) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(profile_run, run_dir)
    path = run_dir / "results.json"
    data = json.loads(path.read_text())
    edit(data["metrics"]["profile"]["details"])
    path.write_text(json.dumps(data))
    capsys.readouterr()
    assert main(["profile-plot", str(run_dir), "-o", str(tmp_path / "plots")]) == 2
    err = _error_line(capsys)
    assert f"{path}: invalid results file: metrics.profile.details." in err and says in err


def test_profile_plot_of_a_wellformed_run_still_draws(tmp_path, capsys, profile_run) -> None:
    assert main(["profile-plot", str(profile_run), "-o", str(tmp_path)]) == 0
    assert (tmp_path / "profile_profile_psnr_by_position.svg").exists()
