"""`vidtok-bench gate`: exit 0 within tolerance, 1 on regression, 2 on unusable input."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import assume, given, settings, strategies as st

from vidtok_bench.cli import main
from vidtok_bench.errors import BenchError
from vidtok_bench.report.gate import Tolerance, is_regression, parse_tolerance, parse_tolerances

try:
    from report_fakes import make_run
except ImportError:  # tests/ imported as a package
    from tests.report_fakes import make_run

BASE = {"psnr": 30.0, "ssim": 0.9, "lpips": 0.1}


def run_dir(path, fvd=100.0, **metrics):
    values = {**BASE, **metrics}
    return make_run(path, per_video={"v0": values, "v1": values}, fvd=fvd)


def gate(capsys, base, cur, *tol):
    args = ["gate", "--baseline", str(base), "--current", str(cur)]
    if tol:
        args += ["--tolerance", *tol]
    rc = main(args)
    out = capsys.readouterr()
    return rc, out.out, out.err


def edit(run, fn):
    f = run / "results.json"
    data = json.loads(f.read_text())
    fn(data)
    f.write_text(json.dumps(data))


@pytest.fixture
def base(tmp_path):
    return run_dir(tmp_path / "base") / "results.json"


@pytest.mark.parametrize("change,tol,expected", [
    ({}, (), 0),
    ({"psnr": 29.96}, ("psnr=0.05",), 0),
    ({"psnr": 29.95}, ("psnr=0.05",), 0),          # exactly at the tolerance passes
    ({"psnr": 29.94}, ("psnr=0.05",), 1),
    ({"psnr": 35.0}, ("psnr=0",), 0),              # higher PSNR is an improvement
    ({"ssim": 0.897}, ("ssim=0.002",), 1),
    ({"lpips": 0.1015}, ("lpips=0.002",), 0),
    ({"lpips": 0.103}, ("lpips=0.002",), 1),       # higher LPIPS is worse
    ({"lpips": 0.01}, ("lpips=0",), 0),            # lower LPIPS is better
    ({"psnr": 29.94}, ("psnr=1%",), 0),            # 1% of 30 = 0.3
    ({"psnr": 29.6}, ("psnr=1%",), 1),
    ({"psnr": 29.97}, (), 0),                      # default psnr tolerance 0.05
    ({"psnr": 29.9}, (), 1),
])
def test_frame_metric_gate(tmp_path, capsys, base, change, tol, expected):
    cur = run_dir(tmp_path / "cur", **change)
    rc, out, _ = gate(capsys, base, cur, *tol)
    assert rc == expected
    assert "status" in out.splitlines()[0] and all(m in out for m in ("psnr", "ssim", "lpips", "fvd"))
    if expected == 1:
        (m, v), = change.items()
        line = next(ln for ln in out.splitlines() if ln.startswith(f"REGRESSION {m}:"))
        assert f"{BASE[m]:.4f}"[:5] in line and f"{v:.4f}"[:5] in line and "allowed" in line
        assert "FAILED" in out.splitlines()[-1]
    else:
        assert "REGRESSION" not in out and "passed" in out.splitlines()[-1]


@pytest.mark.parametrize("fvd,tol,expected", [
    (101.9, "fvd=2%", 0), (102.5, "fvd=2%", 1), (50.0, "fvd=0%", 0), (101.0, "fvd=0.5", 1), (101.0, "fvd=1", 0),
])
def test_fvd_percent_tolerance_and_direction(tmp_path, capsys, base, fvd, tol, expected):
    rc, out, _ = gate(capsys, base, run_dir(tmp_path / "cur", fvd=fvd), tol)
    assert rc == expected
    if expected:
        assert f"REGRESSION fvd: baseline 100.000, current {fvd:.3f}" in out
        assert ("= 2% of baseline" in out) == tol.endswith("%")


def test_direction_comes_from_results_file(tmp_path, capsys):
    b = make_run(tmp_path / "b", per_video={"v0": {"err": 1.0}}, fvd=None)
    c = make_run(tmp_path / "c", per_video={"v0": {"err": 2.0}}, fvd=None)
    assert gate(capsys, b, c, "err=0.5")[0] == 0  # the recorded info says higher is better
    for r in (b, c):
        edit(r, lambda d: d["metrics"]["err"]["info"].update(higher_is_better=False))
    rc, out, _ = gate(capsys, b, c, "err=0.5")
    assert rc == 1 and "REGRESSION err" in out
    # the default tolerance is the one the results record for the metric, not a table in the gate
    for r in (b, c):
        edit(r, lambda d: d["metrics"]["err"]["info"].update(tolerance="150%"))
    assert gate(capsys, b, c)[0] == 0


def test_failed_videos_count_as_regression(tmp_path, capsys, base):
    cur = make_run(tmp_path / "cur", per_video={"v0": BASE}, failed=["v1"])
    rc, out, _ = gate(capsys, base, cur)
    assert rc == 1 and "REGRESSION videos_ok: baseline 2, current 1" in out


def test_unusable_input_exits_2(tmp_path, capsys, base):
    def expect2(cur, *tol, text):
        rc, out, err = gate(capsys, base, cur, *tol)
        assert rc == 2 and text in err and len(err.strip().splitlines()) == 1, err

    expect2(tmp_path / "missing.json", text="missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    expect2(bad, text="not a valid results.json")
    bad.write_text(json.dumps({"schema": "something/else"}))
    expect2(bad, text="schema")
    bad.write_text(json.dumps({"schema": "vidtok-bench/results/v1", "metrics": []}))
    expect2(bad, text="invalid results file: tokenizer.name")
    expect2(make_run(tmp_path / "p", per_video={"v0": BASE}, protocol="tokenbench"), text="protocol differs")
    expect2(make_run(tmp_path / "d", per_video={"v0": BASE}, dataset="mcl_jcv"), text="dataset differs")
    expect2(make_run(tmp_path / "f", per_video={"v0": BASE}, data="other clips"), text="fingerprint.data differs")
    expect2(make_run(tmp_path / "c", per_video={"v0": BASE}, config="other"), text="fingerprint.config differs")
    no_lpips = make_run(tmp_path / "n", per_video={"v0": {"psnr": 30.0, "ssim": 0.9}})
    expect2(no_lpips, text="'lpips' of the baseline is missing")
    ok = run_dir(tmp_path / "ok")
    expect2(ok, "psnr=abc", text="psnr=abc")
    expect2(ok, "psnr=-1", text=">= 0")
    expect2(ok, "pnsr=0.1", text="pnsr")
    expect2(ok, "psnr=0.1", "psnr=0.2", text="twice")


# --- tolerance parsing and direction logic -------------------------------------------------

names = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)
amounts = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=100, deadline=None)
@given(name=names, amount=amounts, percent=st.booleans(), space=st.sampled_from(["", " "]))
def test_parse_tolerance_roundtrip(name, amount, percent, space):
    text = f"{name}{space}={space}{amount!r}{'%' if percent else ''}"
    assert parse_tolerance(text) == (name, Tolerance(amount, percent))
    assert parse_tolerances([f"{text},other=1"])[name] == Tolerance(amount, percent)


@pytest.mark.parametrize("bad", ["psnr", "psnr=", "=1", "psnr=1%%", "psnr=nan", "psnr=inf", "psnr=-0.1", "psnr=1 2"])
def test_parse_tolerance_rejects(bad):
    with pytest.raises(BenchError):
        parse_tolerance(bad)


values = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(b=values, c=values, hib=st.booleans(), amount=st.floats(0, 100), percent=st.booleans())
def test_regression_is_direction_aware(b, c, hib, amount, percent):
    tol = Tolerance(amount, percent)
    allowed = abs(b) * amount / 100 if percent else amount
    worse = (b - c) if hib else (c - b)
    got = is_regression(b, c, hib, tol)
    assume(not math.isclose(worse, allowed, rel_tol=1e-6, abs_tol=1e-6))  # boundary: round-off slack
    assert got == (worse > allowed)
    # mirroring values and direction gives the same verdict for absolute tolerances
    if not percent:
        assert is_regression(-b, -c, not hib, tol) == got
    # an improvement (or no change) never fails
    if worse <= 0:
        assert not got


def test_a_metric_without_a_value_in_both_is_noted_not_refused(tmp_path, capsys):
    """codebook use of a continuous tokenizer has no value: gating such runs checks the rest and says so;
    naming it in --tolerance, or a value present on one side only, is still refused."""
    def null_codebook(d):
        d["metrics"]["codebook"] = {**d["metrics"]["psnr"], "value": None, "info": {**d["metrics"]["psnr"]["info"],
                                                                                     "label": "Codebook", "kind": "set"}}
    base, cur = run_dir(tmp_path / "b"), run_dir(tmp_path / "c", psnr=29.0)
    edit(base, null_codebook), edit(cur, null_codebook)
    rc, out, err = gate(capsys, base, cur)
    assert rc == 1 and "REGRESSION psnr" in out and "codebook" not in out
    assert "not gated, no value in either result: codebook" in err
    rc, _, err = gate(capsys, base, cur, "codebook=0.1")
    assert rc == 2 and "codebook" in err
    edit(cur, lambda d: d["metrics"]["codebook"].update(value=0.5))
    rc, _, err = gate(capsys, base, cur)
    assert rc == 2 and "baseline metric 'codebook' has no value" in err


def test_a_bad_tolerance_in_the_baseline_names_the_file_and_key(tmp_path, capsys, base):
    edit(base.parent, lambda d: d["metrics"]["psnr"]["info"].update(tolerance="abc"))
    rc, _, err = gate(capsys, base, run_dir(tmp_path / "cur"))
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert str(base) in err and "metrics.psnr.info.tolerance" in err and "'abc'" in err
    assert gate(capsys, base, run_dir(tmp_path / "cur"), "psnr=0.05")[0] == 0  # --tolerance overrides it


@pytest.mark.parametrize("value, shown", [(None, "null"), (float("nan"), "NaN")])
def test_a_metric_without_a_value_in_current_is_not_called_missing(tmp_path, capsys, base, value, shown):
    cur = run_dir(tmp_path / "cur")
    edit(cur, lambda d: d["metrics"]["ssim"].update(value=value))
    rc, _, err = gate(capsys, base, cur)
    assert rc == 2 and len(err.strip().splitlines()) == 1, err
    assert f"metric 'ssim' has no value ({shown}) in the current results" in err and "missing" not in err


def test_a_fingerprint_refusal_names_what_differs(tmp_path, capsys, base):
    """Two hashes say that runs differ, not how: the refusal names the recorded setting (a dataset option, a
    metric's spec such as an FVD variant, the tokenizer's configuration)."""
    def cur(name, data="clips-v1", config=None, fn=lambda d: None):
        run = make_run(tmp_path / name, per_video={"v0": BASE, "v1": BASE}, data=data, config=config)
        edit(run, fn)
        return run

    edit(base.parent, lambda d: d["dataset"]["config"].update(size=256, root="/a"))
    rc, _, err = gate(capsys, base, cur("size", "other", fn=lambda d: d["dataset"]["config"].update(size=128, root="/b")))
    assert rc == 2 and "dataset.config.size (256 vs 128)" in err and "root" not in err
    rc, _, err = gate(capsys, base, cur("variant", "other", fn=lambda d: d["dataset"]["config"].update(size=256) or
                                        d["metrics"]["fvd"]["spec"].update(variant="clips16")))
    assert rc == 2 and 'metrics.fvd.spec.variant (null vs "clips16")' in err
    rc, _, err = gate(capsys, base, cur("crf", config="other", fn=lambda d: d["dataset"]["config"].update(size=256) or
                                        d["tokenizer"]["config"].update(crf=18)))
    assert rc == 2 and "fingerprint.config differs" in err and "tokenizer.config.crf (null vs 18)" in err
