"""`vidtok-bench profile`: every point in json/csv/markdown/plot, positive times, OOM marked (never a crash)."""
from __future__ import annotations

import csv
import json
import re

import pytest
import torch

from vidtok_bench.cli import main
from vidtok_bench.errors import ConfigError
from vidtok_bench.frames import FrameRule
from vidtok_bench.profile import (ERROR, OK, OOM, ProfileSpec, fit_shape, is_oom, parse_overrides, profile_point,
                                  tiling_comparison)
from _vidtok_fixtures import FIXTURES, cases, overrides


def _profile(capsys, out, *args: str) -> tuple[int, dict, str]:
    code = main(["profile", *args, "-o", str(out)])
    stdout = capsys.readouterr().out
    return code, json.loads((out / "profile.json").read_text()), stdout


def _check_outputs(out, res: dict, n: int, plot: bool = True) -> None:
    points = res["points"]
    assert len(points) == n
    rows = list(csv.DictReader((out / "profile.csv").open()))
    assert len(rows) == n and [r["status"] for r in rows] == [p["status"] for p in points]
    md = (out / "profile.md").read_text()
    for p in points:
        assert f"| {p['frames']}×{p['height']}×{p['width']} " in md
    if plot:
        assert (out / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / "profile.svg").read_bytes()[:2000]


@pytest.mark.parametrize("name", ["trilinear_488", "identity"])
def test_weight_free_tokenizers(tmp_path, capsys, name: str) -> None:
    code, res, stdout = _profile(capsys, tmp_path, f"tokenizer={name}", "sizes=[32,64]", "frames=[5,9]", "repeats=2", "device=cpu",
                                 f"plot={str(name == 'trilinear_488').lower()}")
    assert code == 0, stdout
    _check_outputs(tmp_path, res, 4, plot=name == "trilinear_488")
    assert {(p["frames"], p["height"]) for p in res["points"]} == {(5, 32), (5, 64), (9, 32), (9, 64)}
    for p in res["points"]:
        assert p["status"] == OK and p["encode_s"] > 0 and p["decode_s"] > 0
        assert len(p["encode_times_s"]) == 2 and all(t > 0 for t in p["encode_times_s"] + p["decode_times_s"])
        assert p["memory_kind"] == "peak_rss" and p["decode_peak_bytes"] > 0
        assert p["encode_mfu"] is None  # no peak figure for CPUs
        # resampling and copies run no matmul/convolution, which is all the FLOP counter sees: unknown, not zero work
        assert p["encode_flops"] is None and p["decode_flops"] is None
        if name == "trilinear_488":  # the tensors' own peak, from an untimed call: at least the decoded clip
            assert p["decode_tensor_peak_bytes"] >= 4 * 3 * p["pixels"] and p["tensor_peak_bytes"] >= p["decode_tensor_peak_bytes"]


def _fixture_args(case_name: str) -> list[str]:
    args = [f"tokenizer.{k}={json.dumps(v).replace(' ', '')}" for k, v in overrides(cases()[case_name]).items()]
    return args + [f"tokenizer.checkpoint={FIXTURES / (case_name + '.ckpt')}"]


def test_vidtok_fixture_checkpoint(tmp_path, capsys) -> None:
    """Every (size, frames) point measured, with FLOPs from the meta-device model."""
    code, res, stdout = _profile(capsys, tmp_path, "tokenizer=vidtok_kl_causal_488_4chn", *_fixture_args("v10_kl_causal_488"),
                                 "sizes=[32,64]", "frames=[5,9]", "repeats=1", "warmup=0", "plot=false")
    assert code == 0, stdout
    _check_outputs(tmp_path, res, 4, plot=False)
    assert res["tokenizer"]["name"] == "vidtok_kl_causal_488_4chn"
    # the tensors' peak grows with the clip: the first point's does not hold the weights its first call loaded
    peaks = [p["tensor_peak_bytes"] for p in sorted(res["points"], key=lambda p: p["pixels"])]
    assert peaks == sorted(peaks) and peaks[0] > 0, peaks
    for p in res["points"]:
        assert p["status"] == OK and p["encode_s"] > 0 and p["decode_s"] > 0
        assert p["encode_flops"] > 0 and p["decode_flops"] > p["encode_flops"]  # the decoder is the heavier half
        assert p["encode_tflops"] == pytest.approx(p["encode_flops"] / p["encode_s"] / 1e12)
        assert p["estimated_activation_bytes"] > 4 * 3 * p["pixels"]


def test_tiling_axis_on_a_v11_model(tmp_path, capsys) -> None:
    """v1.1 has the tiled long mode: tiling=[false,true] gives one point each; the tiled decoder re-decodes overlap."""
    code, res, stdout = _profile(capsys, tmp_path, "tokenizer=vidtok_kl_causal_488_4chn_v1_1", *_fixture_args("v11_kl_causal_488"),
                                 "tokenizer.t_chunk=4", "sizes=[32]", "frames=[17]", "tiling=[false,true]", "repeats=1", "plot=false")
    assert code == 0, stdout
    untiled, tiled = res["points"]
    assert (untiled["tiling"], tiled["tiling"]) == (False, True)
    assert untiled["status"] == tiled["status"] == OK
    assert tiled["decode_flops"] > untiled["decode_flops"]
    # the tiling cost or saving, as multiples of the untiled point
    (row,) = res["tiling_comparison"]
    assert row["resolution"] == "17×32×32" and row["decode_x"] == pytest.approx(tiled["decode_s"] / untiled["decode_s"])
    # tiling's point: the tensors' peak falls (the resident set size can rise, the allocator keeping freed chunks)
    assert row["peak_x"] == pytest.approx(tiled["tensor_peak_bytes"] / untiled["tensor_peak_bytes"]) and row["peak_x"] < 1
    md = (tmp_path / "profile.md").read_text()
    assert "Tiled against untiled" in md and f"| 17×32×32 | {row['encode_x']:.2f} | {row['decode_x']:.2f} |" in re.sub(" +", " ", md)


def test_tiling_true_on_a_model_without_tiled_mode_is_na(tmp_path, capsys) -> None:
    code, res, stdout = _profile(capsys, tmp_path, "tokenizer=vidtok_kl_causal_488_4chn", *_fixture_args("v10_kl_causal_488"),
                                 "sizes=[32]", "frames=[5]", "tiling=[false,true]", "repeats=1", "warmup=0", "plot=false")
    assert code == 0, stdout
    assert [p["status"] for p in res["points"]] == [OK, "n/a"]
    assert "v1.1 long-video mode" in res["points"][1]["note"]


def test_memory_guard_marks_points_oom_and_exits_0(tmp_path, capsys) -> None:
    code, res, stdout = _profile(capsys, tmp_path, "tokenizer=identity", "sizes=[32,64]", "frames=[5,9]", "max_memory_gb=1e-6")
    assert code == 0
    assert [p["status"] for p in res["points"]] == [OOM] * 4
    assert all("max_memory_gb" in p["note"] and p.get("encode_s") is None for p in res["points"])
    assert "note: 4 point(s) OOM" in stdout
    assert (tmp_path / "profile.md").read_text().count("| OOM ") == 4


class _Failing:
    """A tokenizer whose encode raises ``exc``."""

    frame_rule, spatial_multiple, device = FrameRule(), 1, torch.device("cpu")

    def __init__(self, exc: BaseException):
        self.exc = exc

    def encode(self, x):
        raise self.exc

    def decode(self, z):
        return z


@pytest.mark.parametrize("exc, status", [
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"), OOM),
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), OOM),
    (MemoryError(), OOM),
    (ValueError("something else"), ERROR),
])
def test_failures_inside_a_point_are_recorded(exc, status) -> None:
    rec = profile_point(_Failing(exc), (1, 3, 2, 8, 8), ProfileSpec(), torch.device("cpu"), limit_bytes=None)
    assert rec["status"] == status and type(exc).__name__ in rec["note"]
    assert is_oom(exc) == (status == OOM)


def test_parse_overrides() -> None:
    spec = parse_overrides(["tokenizer=identity", "sizes=[256,512]", "frames=17", "tiling=[false,true]",
                            "tokenizer.checkpoint=/x/y.ckpt", "max_memory_gb=2", "precision=bf16"])
    assert spec.sizes == [256, 512] and spec.frames == [17] and spec.tiling == [False, True]
    assert spec.tokenizer_overrides == {"checkpoint": "/x/y.ckpt"} and spec.max_memory_gb == 2.0
    with pytest.raises(ConfigError, match="unknown profile key 'size'"):
        parse_overrides(["size=[1]"])
    with pytest.raises(ConfigError, match="precision"):
        parse_overrides(["precision=fp8"])
    with pytest.raises(ConfigError, match=r"frames=0 must be an integer >= 1"):
        parse_overrides(["frames=[0]"])


def test_fit_shape_follows_frame_rule_and_spatial_multiple() -> None:
    class Tok:
        frame_rule, spatial_multiple = FrameRule(4, 1, 1), 16

    assert fit_shape(Tok(), 30, 6) == (1, 3, 9, 32, 32)
    assert fit_shape(Tok(), 720, 17, aspect=16 / 9, batch=2) == (2, 3, 17, 720, 1280)
    assert fit_shape(Tok(), 1080, 33) == (1, 3, 33, 1088, 1088)
    Tok.min_frame_size = (16, 66)  # hevc: a 32-pixel point is measured at the smallest frames it takes
    assert fit_shape(Tok(), 32, 5) == (1, 3, 5, 32, 80) and fit_shape(Tok(), 8, 5, aspect=16) == (1, 3, 5, 16, 128)


def test_table_formats_are_the_leaderboards(tmp_path, capsys) -> None:
    """formats=[latex,html] writes the same table as `table` renders it: one row per point, values at the column's precision."""
    code, res, _ = _profile(capsys, tmp_path, "tokenizer=identity", "sizes=[32]", "frames=[5,9]", "repeats=1", "device=cpu",
                            "plot=false", "formats=[latex,html]")
    assert code == 0
    tex, html = (tmp_path / "profile.tex").read_text(), (tmp_path / "profile.html").read_text()
    assert "\\begin{tabular}" in tex and "<table" in html
    for p in res["points"]:
        assert f"{p['encode_s']:.4f}" in tex and f"{p['frames']}×{p['height']}×{p['width']}" in html
    assert main(["profile", "formats=[pdf]", "-o", str(tmp_path / "x")]) == 2
    assert "formats" in capsys.readouterr().err


def test_batch_is_stated_where_times_are_per_call(tmp_path, capsys, monkeypatch) -> None:
    """batch=2 times calls of two clips: the table's title and the plot's time axis say so (the axis said 's / clip')."""
    import matplotlib.figure

    labels: list[str] = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig",
                        lambda fig, path, **kw: labels.extend(ax.get_ylabel() for ax in fig.axes))
    code, res, _ = _profile(capsys, tmp_path, "tokenizer=identity", "sizes=[16]", "frames=[3]", "repeats=1", "batch=2")
    assert code == 0 and res["spec"]["batch"] == 2
    assert (tmp_path / "profile.md").read_text().splitlines()[0].endswith("(fp32, 2 clips per call)")
    assert "encode + decode (s, 2 clips per call)" in labels and not any("/ clip" in label for label in labels)


def test_tiling_comparison_pairs_points_of_the_same_shape() -> None:
    def point(tiling, size, enc, dec, peak, status=OK):
        return {"status": status, "tiling": tiling, "frames": 17, "height": size, "width": size, "frames_requested": 17,
                "size": size, "encode_s": enc, "decode_s": dec, "tensor_peak_bytes": peak}

    rows = tiling_comparison([point(False, 64, 2.0, 4.0, 100), point(False, 128, 1.0, 1.0, 0), point(True, 64, 3.0, 2.0, 50),
                              point(True, 128, 1.0, 1.0, 10), point(True, 256, 1.0, 1.0, 10), point(False, 32, 1.0, 1.0, 1, OOM),
                              point(True, 32, 1.0, 1.0, 1)])
    assert rows == [{"resolution": "17×64×64", "encode_x": 1.5, "decode_x": 0.5, "peak_x": 0.5},
                    {"resolution": "17×128×128", "encode_x": 1.0, "decode_x": 1.0, "peak_x": None}]
    assert tiling_comparison([point(None, 64, 1.0, 1.0, 1)]) == []
