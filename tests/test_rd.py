"""``vidtok-bench rd``: rate–distortion figures from results.json files."""
from __future__ import annotations

import argparse
import csv
import json

import pytest

from vidtok_bench.errors import BenchError
from vidtok_bench.report import rd
from vidtok_bench.results import SCHEMA


def _result(tokenizer: dict, bpp: float, psnr: float, lpips: float | None, dataset: str = "mcl_jcv") -> dict:
    metrics = {"psnr": {"mean": psnr, "frames": 34, "clips": 2, "videos": 1, "spec": {"name": "psnr"}, "higher_is_better": True}}
    if lpips is not None:
        metrics["lpips"] = {"mean": lpips, "frames": 34, "clips": 2, "videos": 1, "spec": {"name": "lpips"}, "higher_is_better": False}
    return {
        "schema": SCHEMA,
        "tokenizer": {"compression": [1, 1, 1], "causal": False, "frame_rule": "any frame count", "latent_channels": 3,
                      "codebook_size": None, "bits_per_element": 16, "nominal_bits_per_pixel": None, "weights": {}, "config": {}, **tokenizer},
        "dataset": {"name": dataset, "plugin": "folder", "preprocess": {}, "config": {}},
        "protocol": {"name": "vidtok"},
        "metrics": metrics,
        "bits_per_pixel": bpp,
        "compression": [1, 1, 1],
        "throughput": {"encode_s": 1.0, "decode_s": 1.0, "encode_frames_per_s": 34, "decode_frames_per_s": 34,
                       "frames_per_s": 17, "clips_per_s": 1, "clips": 2, "frames": 34},
        "memory": {"peak_bytes": 1, "kind": "peak_rss"},
        "frames": {"evaluated": 34, "tokenizer_padded": 0, "tail_repeated": 0},
        "videos": {"total": 1, "ok": 1, "failed": []},
        "run": {"device": "cpu", "precision": "fp32", "batch_size": 1, "seed": 42, "date": "2026-01-01T00:00:00Z", "duration_s": 2},
        "environment": {"vidtok_bench": "0.1.0"},
        "config": {},
        "fingerprint": {"data": "d" * 64, "config": "c" * 64},
    }


H264 = {"name": "h264", "plugin": "codec", "codec": "h264", "preset": "medium"}
FSQ = {"name": "vidtok_fsq_causal_488_262144", "plugin": "vidtok", "regularizer": "fsq", "causal": True, "version": "1.0", "codebook_size": 262144}
FSQ2 = {**FSQ, "name": "vidtok_fsq_causal_488_4096", "codebook_size": 4096}
COG = {"name": "cogvideox", "plugin": "diffusers_vae", "vae_class": "AutoencoderKLCogVideoX"}


def _write(tmp_path, results: list[dict]):
    for i, r in enumerate(results):
        d = tmp_path / "runs" / f"r{i}"
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(r))
    return tmp_path / "runs"


def test_family_keys():
    assert rd.family_of(H264) == "h264"
    assert rd.family_of({**H264, "preset": "veryslow"}) == "h264 veryslow"
    assert rd.family_of(FSQ) == rd.family_of(FSQ2) == "vidtok fsq causal"
    assert rd.family_of({"name": "vidtok_kl_noncausal_488_4chn", "plugin": "vidtok", "regularizer": "kl", "causal": False, "version": "1.0"}) == "vidtok kl noncausal"
    assert rd.family_of({"name": "vidtok_kl_causal_488_16chn_v1_1", "plugin": "vidtok", "regularizer": "kl", "causal": True, "version": "1.1"}) == "vidtok kl causal v1.1"
    assert rd.family_of(COG) == "cogvideox"
    assert rd.family_of({**COG, "family": "mine"}) == "mine"


def test_rd_writes_png_svg_and_points(tmp_path):
    runs = _write(tmp_path, [
        _result({**H264, "crf": 30}, 0.05, 28.0, 0.30),
        _result({**H264, "crf": 20}, 0.20, 35.0, 0.10),
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
    assert "none of the metrics" in capsys.readouterr().err
    assert main(["rd", str(tmp_path / "missing")]) == 2
