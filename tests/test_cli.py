"""End-to-end CLI: the default run, real shared videos, and bad input as one-line errors."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from vidtok_bench.cli import main


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("vidtok-bench: error: ") and "Traceback" not in err
    return lines[0]


def test_default_run_works_offline_without_weights(tmp_path):
    """`vidtok-bench run` with no overrides: synthetic data, a weight-free tokenizer, no hub, no cache."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", VIDTOK_BENCH_CACHE=str(tmp_path / "empty-cache"), HOME=str(tmp_path))
    exe = shutil.which("vidtok-bench") or f"{sys.executable} -m vidtok_bench.cli"
    proc = subprocess.run([*exe.split(), "run", "progress=false"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out_dir,) = (tmp_path / "outputs" / "trilinear_488").glob("synthetic-vidtok-*")
    res = json.loads((out_dir / "results.json").read_text())
    assert res["tokenizer"]["name"] == "trilinear_488" and res["dataset"]["name"] == "synthetic"
    assert res["protocol"]["name"] == "vidtok"
    assert res["videos"]["ok"] == res["videos"]["total"] > 0
    assert 10 < res["metrics"]["psnr"]["value"] < 40 and 0 < res["metrics"]["ssim"]["value"] < 1
    assert res["metrics"]["psnr"]["frames"] == res["metrics"]["psnr"]["clips"] * 17
    assert res["bits_per_pixel"] == pytest.approx(3 * 5 * 16 / (17 * 64))
    assert not (tmp_path / "empty-cache").exists()
    assert "psnr" in proc.stdout and "results.json" in proc.stdout


def test_run_on_shared_videos(tmp_path, capsys, shared_videos):
    root = tmp_path / "videos"
    root.mkdir()
    for name in ("vidtok_example_256x256.mp4", "sintel_854x480.mp4"):
        (root / name).symlink_to(shared_videos / name)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(2000))
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "run", "tokenizer=trilinear_488", "dataset=folder", f"dataset.root={root}", "dataset.fps=30",
                                "dataset.size=128", "dataset.clip_len=17", "dataset.max_frames=34", "metrics=[psnr,ssim]",
                                f"output_dir={out}", "limit=3", "device=cpu", "progress=false")
    assert code == 3, err  # partial: one video failed, the others are in the results
    res = json.loads((out / "results.json").read_text())
    assert res["videos"]["total"] == 3 and res["videos"]["ok"] == 2
    (failed,) = res["videos"]["failed"]
    assert failed["video"] == "broken.mp4" and "broken.mp4" in failed["error"]
    assert res["dataset"]["preprocess"]["size"] == 128 and res["dataset"]["preprocess"]["clip_len"] == 17
    # 34 sampled frames -> exactly 2 clips per good video
    assert res["metrics"]["psnr"]["clips"] == 4 and res["metrics"]["psnr"]["videos"] == 2
    pv = pd.read_csv(out / "per_video.csv")
    assert list(pv["status"]) == ["failed", "ok", "ok"]
    assert "failed" in err and "broken.mp4" in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["tokenizer=nope"], "unknown tokenizer 'nope'; known tokenizers: "),
        (["dataset=nope"], "unknown dataset 'nope'"),
        (["protocol=nope"], "unknown protocol 'nope'; known protocols: common_metrics, tokenbench, vidtok"),
        (["dataset=folder"], "dataset.root must be set"),
        (["bogus_key=1"], "invalid configuration"),
        (["dataset.fps=-3"], "dataset.fps=-3"),
        (["precision=fp8"], "precision='fp8'"),
        (["metrics=[psnr,nope]"], "unknown metric plugin 'nope'"),
        (["tokenizer.not_an_option=3"], "not_an_option"),
    ],
)
def test_bad_configuration_is_one_line(tmp_path, capsys, args, needle):
    code, _, err = run_cli(capsys, "run", *args, f"output_dir={tmp_path}", "progress=false")
    assert code == 2
    assert needle in one_line_error(err)


def test_unknown_tokenizer_lists_known_names(tmp_path, capsys):
    _, _, err = run_cli(capsys, "run", "tokenizer=vidtok_kl_causal_488_16", f"output_dir={tmp_path}")
    line = one_line_error(err)
    assert "vidtok_kl_causal_488_16chn" in line and "trilinear_488" in line


def test_missing_and_empty_roots(tmp_path, capsys):
    code, _, err = run_cli(capsys, "run", "dataset=folder", f"dataset.root={tmp_path / 'absent'}", f"output_dir={tmp_path / 'o1'}", "progress=false")
    assert code == 2 and "absent" in one_line_error(err)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli(capsys, "run", "dataset=folder", f"dataset.root={empty}", f"output_dir={tmp_path / 'o2'}", "progress=false")
    assert code == 2 and str(empty) in one_line_error(err)


def test_crop_below_the_tokenizers_minimum_is_refused_before_any_decoding(tmp_path, capsys):
    """hevc takes frames at least 66 wide: dataset.size=32 is known to fail every clip before a video is decoded."""
    code, _, err = run_cli(capsys, "run", "tokenizer=hevc", "dataset=synthetic", "dataset.size=32", "metrics=[psnr]",
                           f"output_dir={tmp_path}", "progress=false")
    assert code == 2 and "dataset.size=32: tokenizer 'hevc_crf28' needs frames of at least 16x66 (e.g. dataset.size=66)" \
        in one_line_error(err)
    assert not (tmp_path / "results.json").exists()


def test_frame_size_the_tokenizer_refuses_is_refused_before_any_decoding(tmp_path, capsys, shared_videos):
    # 60x60 crops are not a multiple of trilinear_488's 8x8 spatial factor: known before decoding
    code, _, err = run_cli(capsys, "run", "dataset=folder", f"dataset.root={shared_videos / 'kinetics_arm_wrestling_340x256.mp4'}",
                           "dataset.size=60", "dataset.max_frames=17", f"output_dir={tmp_path}", "progress=false")
    assert code == 2 and "multiples of 8 (e.g. dataset.size=56)" in one_line_error(err)
    assert not (tmp_path / "results.json").exists()
    # without a crop the frame size is known only per video: that video fails, the run says so
    code, _, err = run_cli(capsys, "run", "dataset=folder", f"dataset.root={shared_videos / 'kinetics_arm_wrestling_340x256.mp4'}",
                           "dataset.size=60", "dataset.crop=none", "dataset.max_frames=17", f"output_dir={tmp_path}", "progress=false")
    assert code == 4
    (failed,) = json.loads((tmp_path / "results.json").read_text())["videos"]["failed"]
    assert "not a multiple of 8" in failed["error"]


def test_list_and_help(capsys):
    code, out, _ = run_cli(capsys, "list", "tokenizers")
    assert code == 0
    for name in ("identity", "trilinear_488", "vidtok_kl_causal_488_16chn", "vidtok_fsq_causal_888_32768_v1_1", "h264"):
        assert name in out
    assert "4x8x8" in out
    code, out, _ = run_cli(capsys, "list", "metrics")
    assert all(m in out for m in ("psnr", "ssim", "lpips", "fvd"))
    from vidtok_bench.registry import METRICS

    header, _, *rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()]
    listed = {r[0]: dict(zip(header, r)) for r in rows}
    for name in ("psnr", "lpips", "fvd"):  # each metric's own declared facts, as results and tables use them
        info = METRICS.get(name).info
        assert listed[name]["decimals"] == str(info.precision) and listed[name]["gate tolerance"] == str(info.tolerance)
    code, out, _ = run_cli(capsys, "list", "datasets")
    assert all(d in out for d in ("synthetic", "folder", "mcl_jcv"))
    with pytest.raises(SystemExit) as exc:
        main(["run", "--help"])
    assert exc.value.code == 0
    assert "tokenizer=NAME" in capsys.readouterr().out


def test_cfg_prints_resolved_config(capsys):
    code, out, _ = run_cli(capsys, "run", "--cfg", "tokenizer=identity", "dataset.fps=24")
    assert code == 0
    assert "plugin: identity" in out and "fps: 24" in out


LEADERBOARD = os.path.join(os.path.dirname(__file__), "..", "results", "leaderboard")


@pytest.mark.parametrize("where", ["a_directory", "no_parent/x.md"])
def test_an_output_path_that_cannot_be_written_is_one_line_not_a_traceback(tmp_path, capsys, where):
    (tmp_path / "a_directory").mkdir()
    code, _, err = run_cli(capsys, "table", LEADERBOARD, "-o", str(tmp_path / where))
    assert code == 2 and err.count("\n") == 1 and str(tmp_path / where) in err and "Traceback" not in err


def test_a_full_disk_while_writing_a_report_exits_5(tmp_path, capsys, monkeypatch):
    import errno
    from pathlib import Path

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)
    code, _, err = run_cli(capsys, "table", LEADERBOARD, "-o", str(tmp_path / "t.md"))
    assert code == 5 and err.strip() == f"vidtok-bench: error: {tmp_path / 't.md'}: No space left on device"


def test_every_command_unwinds_on_sigterm_with_143(tmp_path, capsys, monkeypatch):
    """SIGTERM is handled by the CLI, not by `run` alone: any command stops with one line and 143."""
    import signal

    from vidtok_bench import merge

    def killed(args):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    monkeypatch.setattr(merge, "main", killed)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["merge", str(tmp_path), "-o", str(tmp_path / "m")]) == 143
    assert signal.getsignal(signal.SIGTERM) is before
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "terminated (SIGTERM)" in err and "Traceback" not in err


def test_the_harness_warnings_are_one_line_and_others_keep_their_origin(monkeypatch, capsys):
    """A warning raised by the harness (here: a dataset plugin) reads `vidtok-bench: warning: ...`, without the
    file name and source line Python prints; a third-party library's warning still says where it comes from."""
    import warnings

    import vidtok_bench.datasets._common as common

    def warn_twice(args):
        warnings.warn_explicit("vidtok-bench: 2 of 30 videos missing", UserWarning, common.__file__, 98)  # datasets/
        warnings.warn_explicit("deprecated thing", DeprecationWarning, "/lib/torch/nn/x.py", 7)
        return 0

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        monkeypatch.setattr(warnings, "showwarning", lambda *a, **k: sys.stderr.write(warnings.formatwarning(*a[:4])))
        from vidtok_bench import cli

        monkeypatch.setattr(cli, "build_parser", _parser_running(warn_twice))
        code, _, err = run_cli(capsys, "list")
    assert code == 0
    lines = err.splitlines()
    assert lines[0] == "vidtok-bench: warning: 2 of 30 videos missing"
    assert lines[1].startswith("/lib/torch/nn/x.py:7: DeprecationWarning: deprecated thing")
    assert warnings.formatwarning is not cli.format_warning  # restored after the command


def _parser_running(func):
    import argparse

    def build():
        parser = argparse.ArgumentParser(prog="vidtok-bench")
        parser.add_subparsers(dest="command").add_parser("list").set_defaults(func=func)
        return parser

    return build


def test_ctrl_c_while_the_commands_load_is_one_line_and_130(capsys, monkeypatch):
    """Ctrl-C in the first second (the sub-commands' modules importing) is no traceback either."""
    from vidtok_bench import cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert main(["run"]) == 130
    assert capsys.readouterr().err == "vidtok-bench: interrupted\n"
