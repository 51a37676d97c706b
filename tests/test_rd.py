"""``vidtok-bench rd``: rate–distortion figures from results.json files."""
from __future__ import annotations

import argparse
import csv
import json

import pytest

from vidtok_bench.errors import BenchError
from vidtok_bench.report import rd
from pathlib import Path

from report_fakes import make_run


def _result(tokenizer: dict, bpp: float, psnr: float, lpips: float | None, dataset: str = "mcl_jcv") -> dict:
    """A v2 results dict built by the test helpers, with the given tokenizer block and values."""
    import tempfile

    values = {"psnr": psnr} if lpips is None else {"psnr": psnr, "lpips": lpips}
    with tempfile.TemporaryDirectory() as d:
        run = make_run(Path(d), tokenizer=tokenizer["name"], family=tokenizer["family"], dataset=dataset,
                       per_video={"v0": values}, fvd=None, bits_per_pixel=bpp)
        r = json.loads((run / "results.json").read_text())
    r["tokenizer"].update(tokenizer)
    return r


H264 = {"name": "h264", "plugin": "codec", "codec": "h264", "preset": "medium", "family": "h264"}
FSQ = {"name": "vidtok_fsq_causal_488_262144", "plugin": "vidtok", "family": "vidtok fsq causal", "codebook_size": 262144}
FSQ2 = {**FSQ, "name": "vidtok_fsq_causal_488_4096", "codebook_size": 4096}
COG = {"name": "cogvideox", "plugin": "diffusers_vae", "family": "cogvideox"}


def _write(tmp_path, results: list[dict]):
    for i, r in enumerate(results):
        d = tmp_path / "runs" / f"r{i}"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(r))
    return tmp_path / "runs"


def test_plugins_declare_their_family():
    """The curve a result belongs to is declared by its plugin and recorded in the result."""
    from vidtok_bench import create_tokenizer

    assert create_tokenizer("h264").family == "h264"
    assert create_tokenizer("h264", preset="veryslow").family == "h264 veryslow"
    assert create_tokenizer("av1", crf=30).family == "av1"
    assert create_tokenizer("vidtok_fsq_causal_488_262144").family == create_tokenizer("vidtok_fsq_causal_488_4096").family \
        == "vidtok fsq causal"
    assert create_tokenizer("vidtok_kl_noncausal_488_4chn").family == "vidtok kl noncausal"
    assert create_tokenizer("vidtok_kl_causal_488_16chn_v1_1").family == "vidtok kl causal v1.1"
    assert create_tokenizer("cogvideox").family == "cogvideox"
    assert create_tokenizer("h264").info(weights=False)["family"] == "h264"


def test_rd_writes_png_svg_and_points(tmp_path):
    runs = _write(tmp_path, [
        _result({**H264, "name": "h264_crf30", "crf": 30}, 0.05, 28.0, 0.30),
        _result({**H264, "name": "h264_crf20", "crf": 20}, 0.20, 35.0, 0.10),
        _result(FSQ, 0.0703, 29.5, 0.20),
        _result(FSQ2, 0.0469, 27.0, 0.28),
        _result(COG, 1.0, 36.0, None),  # no LPIPS: only in the PSNR figure
    ])
    out = tmp_path / "fig"
    parser = argparse.ArgumentParser()
    rd.register(parser.add_subparsers())
    args = parser.parse_args(["rd", str(runs), "-o", str(out), "--metrics", "psnr", "lpips"])
    assert args.func(args) == 0
    for metric in ("psnr", "lpips"):
        png, svg = out / f"rd_{metric}.png", out / f"rd_{metric}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        text = svg.read_text()
        assert text.lstrip().startswith("<?xml") and "<svg" in text
        assert "h264" in text and "vidtok fsq causal" in text
        assert ("cogvideox" in text) == (metric == "psnr")
    with (out / "rd_points.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    h264 = [r for r in rows if r["family"] == "h264"]
    assert [float(r["bits_per_pixel"]) for r in h264] == [0.05, 0.20]  # sorted by rate within a family
    assert {r["family"] for r in rows} == {"h264", "vidtok fsq causal", "cogvideox"}


def test_a_rerun_is_one_point_the_newest_and_shard_parts_none(tmp_path):
    """The points are the rows `table` shows: two results of one tokenizer would draw a false curve segment, and a
    shard's values cover only its videos."""
    old, new = _result(FSQ, 0.0703, 29.5, 0.20), _result(FSQ, 0.0703, 30.5, 0.18)
    old["run"]["date"], new["run"]["date"] = "2026-01-01T00:00:00+00:00", "2026-02-01T00:00:00+00:00"
    part = _result(H264, 0.1, 30.0, 0.2)
    part["shard"] = {"index": 0, "count": 2, "videos": ["v0"], "dataset_videos": ["v0", "v1"]}
    part["fingerprint"]["config"] = "0" * 64  # a part of another run, not merged
    runs = _write(tmp_path, [old, new, _result(H264, 0.2, 33.0, 0.1), part])
    rows, notes = rd.rd_points([runs], ["psnr"])
    assert sorted((r["tokenizer"], r["psnr"]) for r in rows) == [("h264", 33.0), (FSQ["name"], 30.5)]
    assert any("using the newest" in n for n in notes) and any("shard result" in n for n in notes)


def test_mixed_datasets_refused_unless_allowed(tmp_path):
    runs = _write(tmp_path, [_result(H264, 0.1, 30.0, 0.2), _result(FSQ, 0.07, 29.0, 0.2, dataset="uvg")])
    with pytest.raises(BenchError, match="different dataset"):
        rd.rd_points([runs], ["psnr"])
    rows, _ = rd.rd_points([runs], ["psnr"], allow_mixed=True)
    assert {r["family"] for r in rows} == {"h264 [mcl_jcv/vidtok]", "vidtok fsq causal [uvg/vidtok]"}


def test_cli_entry_and_errors(tmp_path, capsys):
    from vidtok_bench.cli import main

    runs = _write(tmp_path, [_result(H264, 0.1, 30.0, None), _result(FSQ, 0.07, 29.0, None)])
    assert main(["rd", str(runs), "-o", str(tmp_path / "o"), "--metrics", "psnr"]) == 0
    assert (tmp_path / "o" / "rd_psnr.svg").is_file()
    assert main(["rd", str(runs), "-o", str(tmp_path / "o2"), "--metrics", "fvd"]) == 2
    capsys.readouterr()
    assert main(["rd", str(runs), "-o", str(tmp_path / "o3"), "--metrics", "psrn"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no result has metric 'psrn' (did you mean 'psnr'?); these results have: " in err
    assert main(["rd", str(runs), "-o", str(tmp_path / "o4"), "--metrics", "psnr", "fvd"]) == 0
    assert capsys.readouterr().err == "vidtok-bench: note: no result has metric 'fvd'; no figure for it\n"  # once
    assert main(["rd", str(tmp_path / "missing")]) == 2
