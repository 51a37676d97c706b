"""`vidtok-bench compare`: deltas, paired bootstrap CIs over videos, per-video breakdown."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vidtok_bench.cli import main
from vidtok_bench.errors import BenchError
from vidtok_bench.report.bootstrap import bootstrap_mean_ci
from vidtok_bench.report.compare import compare_runs

try:
    from report_fakes import make_run
except ImportError:  # tests/ imported as a package
    from tests.report_fakes import make_run


def reference_bootstrap(d, w, n_resamples, seed, confidence=0.95):
    """Independent formulation: multinomial resample counts per video, weighted ratio of sums."""
    rng = np.random.RandomState(seed)
    n = len(d)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)
    stats = (counts @ (w * d)) / (counts @ w)
    a = (1 - confidence) / 2
    return np.percentile(stats, [100 * a, 100 * (1 - a)])


def test_constant_shift_gives_exactly_the_shift(tmp_path):
    rng = np.random.default_rng(1)
    base = rng.uniform(20, 40, size=25)
    a = make_run(tmp_path / "a", per_video={f"v{i}": {"psnr": float(x)} for i, x in enumerate(base)}, fvd=100.0)
    b = make_run(tmp_path / "b", per_video={f"v{i}": {"psnr": float(x) + 0.75} for i, x in enumerate(base)},
                 fvd=90.0, tokenizer="tok_b")
    c = compare_runs(a, b, n_resamples=2000)
    row = c.metrics.set_index("metric").loc["psnr"]
    assert row["delta"] == pytest.approx(0.75, abs=1e-9)
    assert row["ci_low"] == pytest.approx(0.75, abs=1e-9) and row["ci_high"] == pytest.approx(0.75, abs=1e-9)
    assert row["videos"] == 25 and row["change"].startswith("better")
    fvd = c.metrics.set_index("metric").loc["fvd"]
    assert fvd["delta"] == pytest.approx(-10.0) and np.isnan(fvd["ci_low"]) and "no CI" in fvd["change"]


def test_bootstrap_matches_independent_reference():
    rng = np.random.default_rng(7)
    d = rng.standard_t(4, size=40) * 0.3 + 0.1
    w = rng.integers(5, 60, size=40).astype(float)
    for weights in (None, w):
        got = bootstrap_mean_ci(d, weights, n_resamples=20_000, seed=3)
        ref = reference_bootstrap(d, np.ones_like(d) if weights is None else w, 20_000, seed=11)
        est = np.sum((np.ones_like(d) if weights is None else w) * d) / np.sum(np.ones_like(d) if weights is None else w)
        assert got.estimate == pytest.approx(est, rel=1e-12)
        # two independent Monte-Carlo runs of the same bootstrap: endpoints agree to MC error (~0.003 here)
        assert got.low == pytest.approx(ref[0], abs=0.015) and got.high == pytest.approx(ref[1], abs=0.015)
        assert got.low < est < got.high
    # same seed -> same interval; chunking must not change the draws' distribution of results
    a = bootstrap_mean_ci(d, n_resamples=5000, seed=5)
    assert a == bootstrap_mean_ci(d, n_resamples=5000, seed=5)
    small = bootstrap_mean_ci(d, n_resamples=20_000, seed=5, chunk_elems=100)
    assert small.low == pytest.approx(a.low, abs=0.015)


def test_bootstrap_coverage_is_near_nominal():
    rng = np.random.default_rng(2024)
    hits, trials = 0, 400
    for t in range(trials):
        x = rng.normal(0.5, 1.0, size=30)
        ci = bootstrap_mean_ci(x, n_resamples=1000, seed=t)
        hits += ci.low <= 0.5 <= ci.high
    # percentile bootstrap of a mean at n=30 covers ~93-95%; SD of this estimate is ~1.1%
    assert 0.89 <= hits / trials <= 0.985


def test_weighted_estimate_equals_headline_delta(tmp_path):
    pv_a = {"v0": {"psnr": 30.0, "ssim": 0.90}, "v1": {"psnr": 20.0, "ssim": 0.80}, "v2": {"psnr": 25.0, "ssim": 0.7}}
    pv_b = {"v0": {"psnr": 31.0, "ssim": 0.91}, "v1": {"psnr": 18.0, "ssim": 0.70}, "v2": {"psnr": 25.5, "ssim": 0.7}}
    frames = {"v0": 100, "v1": 10, "v2": 40}
    a = make_run(tmp_path / "a", per_video=pv_a, frames=frames)
    b = make_run(tmp_path / "b", per_video=pv_b, frames=frames)
    c = compare_runs(a, b, n_resamples=500)
    m = c.metrics.set_index("metric")
    headline = json.loads((b / "results.json").read_text())["metrics"]["psnr"]["value"] - \
        json.loads((a / "results.json").read_text())["metrics"]["psnr"]["value"]
    assert m.loc["psnr", "delta"] == pytest.approx(headline)
    assert m.loc["psnr", "ci_low"] <= headline <= m.loc["psnr", "ci_high"]
    # worst PSNR regression first: v1 (-2), then v2 (+0.5), then v0 (+1)
    assert list(c.per_video["video"]) == ["v1", "v2", "v0"]
    c2 = compare_runs(a, b, n_resamples=100, sort_metric="ssim")
    assert list(c2.per_video["video"])[0] == "v1"


def test_lower_is_better_sorting_and_partial_overlap(tmp_path):
    a = make_run(tmp_path / "a", per_video={"v0": {"lpips": 0.1}, "v1": {"lpips": 0.2}, "gone": {"lpips": 0.3}})
    b = make_run(tmp_path / "b", per_video={"v0": {"lpips": 0.3}, "v1": {"lpips": 0.1}, "new": {"lpips": 0.0}})
    c = compare_runs(a, b, n_resamples=200)
    assert list(c.per_video["video"]) == ["v0", "v1"]  # higher LPIPS is a regression: v0 first
    assert c.sort_metric == "lpips" and any("2 videos scored in both" in n for n in c.notes)


def test_cli_output_and_fingerprint_refusal(tmp_path, capsys):
    pv = {f"v{i}": {"psnr": 30.0 + i, "ssim": 0.9, "lpips": 0.1} for i in range(4)}
    a = make_run(tmp_path / "a", per_video=pv)
    b = make_run(tmp_path / "b", per_video={k: {**v, "psnr": v["psnr"] - (k == "v2")} for k, v in pv.items()})
    other = make_run(tmp_path / "other", per_video=pv, data="other-clips")
    assert main(["compare", str(a), str(b), "--top", "2", "--per-video-csv", str(tmp_path / "pv.csv")]) == 0
    out = capsys.readouterr().out
    assert "95% CI" in out and "Per video, worst psnr first (2 of 4)" in out
    per_video_lines = out.split("Per video")[1].strip().splitlines()
    assert per_video_lines[3].split()[0] == "v2"
    assert (tmp_path / "pv.csv").read_text().splitlines()[1].startswith("v2,")
    assert main(["compare", str(a), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--force" in err and "data fingerprints differ" in err
    assert main(["compare", str(a), str(other / "results.json"), "--force"]) == 0
    assert "despite different data" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--metric", "fvd"]) == 2
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2


def test_bootstrap_rejects_bad_input():
    with pytest.raises(BenchError):
        bootstrap_mean_ci(np.array([]))
    with pytest.raises(BenchError):
        bootstrap_mean_ci(np.array([1.0, np.nan]))
    with pytest.raises(BenchError):
        bootstrap_mean_ci(np.array([1.0, 2.0]), np.array([1.0, 0.0]))


def test_no_significance_call_below_the_minimum_number_of_videos(tmp_path):
    from vidtok_bench.report.compare import MIN_VIDEOS_FOR_SIGNIFICANCE, compare_runs

    def runs(n: int, tag: str):
        a = make_run(tmp_path / f"a{tag}", per_video={f"v{i}": {"psnr": 30.0 + i} for i in range(n)}, fvd=None)
        b = make_run(tmp_path / f"b{tag}", tokenizer="tok_b",
                     per_video={f"v{i}": {"psnr": 31.0 + i} for i in range(n)}, fvd=None)
        return compare_runs(a, b, n_resamples=500).metrics.set_index("metric").loc["psnr"]

    few = runs(2, "few")  # +1 dB on both videos: a bootstrap would call it significant
    assert "only 2 videos" in few["change"] and "(significant)" not in few["change"] and few["videos"] == 2
    many = runs(MIN_VIDEOS_FOR_SIGNIFICANCE, "many")
    assert "(significant)" in many["change"]


def test_interval_resamples_the_headline_mean_over_videos(tmp_path):
    """A headline that is a mean over videos (PSNR under tokenbench) gets an interval of that mean, not of a
    frame-weighted one: a short video that got much worse must pull the interval below zero as it does the delta."""
    frames = {"short": 10, **{f"v{i}": 200 for i in range(5)}}
    pv_a = {v: {"psnr": 30.0} for v in frames}
    pv_b = {v: {"psnr": 20.0 if v == "short" else 31.0} for v in frames}
    a = make_run(tmp_path / "a", per_video=pv_a, frames=frames, metrics={"psnr": 30.0}, fvd=None)
    b = make_run(tmp_path / "b", per_video=pv_b, frames=frames, metrics={"psnr": (20.0 + 5 * 31.0) / 6}, fvd=None)
    row = compare_runs(a, b, n_resamples=2000).metrics.set_index("metric").loc["psnr"]
    assert row["delta"] == pytest.approx(-5 / 6)
    assert row["ci_low"] <= row["delta"] <= row["ci_high"] and row["ci_low"] < 0
    assert row["change"].startswith("worse")


def _edit(run, fn):
    f = run / "results.json"
    data = json.loads(f.read_text())
    fn(data)
    f.write_text(json.dumps(data))


def test_runs_on_the_same_frames_that_scored_other_metrics_are_compared(tmp_path, capsys):
    """A run with one metric more has another data fingerprint (it hashes the metric specs) but scored the same
    frames: compare compares the common metrics instead of claiming the clips differ. A dataset option that
    differs is still refused, and named."""
    pv = {f"v{i}": {"psnr": 30.0 + i} for i in range(3)}
    a = make_run(tmp_path / "a", per_video=pv, fvd=None)
    b = make_run(tmp_path / "b", per_video={v: {**x, "ssim": 0.9} for v, x in pv.items()}, fvd=None, data="more metrics")
    c = make_run(tmp_path / "c", per_video=pv, fvd=None, data="other size")
    for run, size in ((a, 64), (b, 64), (c, 128)):
        _edit(run, lambda d: d["fingerprint"].update(manifest="m" * 64) or d["dataset"]["config"].update(size=size))
    comparison = compare_runs(a, b, n_resamples=100)
    assert list(comparison.metrics["metric"]) == ["psnr", "bits_per_pixel"]
    assert any("differ only in metrics" in n and "'ssim' only in B" in n for n in comparison.notes)
    assert main(["compare", str(a), str(c)]) == 2
    assert "dataset.config.size (64 vs 128)" in capsys.readouterr().err


def test_bits_per_pixel_is_shown_as_its_table_column_says(tmp_path, monkeypatch, capsys):
    """Bits per pixel is a field, not a metric: its decimals have one owner, the table's column, which compare
    (and the run summary) read rather than keep a number of their own."""
    from vidtok_bench.report import table
    from vidtok_bench.results import load_result
    from vidtok_bench.run_cli import print_summary

    pv = {f"v{i}": {"psnr": 30.0 + i} for i in range(3)}
    a = make_run(tmp_path / "a", per_video=pv, bits_per_pixel=0.123456)
    b = make_run(tmp_path / "b", per_video=pv, bits_per_pixel=0.2)
    monkeypatch.setitem(table.COLUMNS, "bits_per_pixel", table.Column("bpp", 2))
    assert main(["compare", str(a), str(b)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("bits_per_pixel"))
    assert row.split()[1:4] == ["0.12", "0.20", "+0.08"], row
    print_summary(load_result(a))
    assert "bpp 0.12\n" in capsys.readouterr().out
