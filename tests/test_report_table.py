"""`vidtok-bench table` and README block regeneration."""
from __future__ import annotations

import csv
import io
import json

import pytest
from hypothesis import given, settings, strategies as st

from vidtok_bench.cli import main
from vidtok_bench.errors import BenchError
from vidtok_bench.report.readme import END, START, replace_block, update_readme

try:
    from report_fakes import simple_run
except ImportError:  # tests/ imported as a package
    from tests.report_fakes import simple_run


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    simple_run(root / "tok_a" / "synthetic-vidtok", tokenizer="tok_a", psnr=30.0, lpips=0.2, fvd=120.0)
    simple_run(root / "tok_b" / "synthetic-vidtok", tokenizer="tok_b", psnr=32.456, lpips=0.1, fvd=None)
    simple_run(root / "tok_c" / "synthetic-vidtok", tokenizer="tok_c", psnr=28.0, lpips=0.05, fvd=80.0)
    return root


def table(capsys, *args):
    rc = main(["table", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_markdown_header_sorting_precision_and_missing(results, capsys):
    rc, out, _ = table(capsys, results)
    assert rc == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith("| Tokenizer") and "PSNR (dB) ↑" in lines[0] and "LPIPS ↓" in lines[0]  # unit declared by the metric
    assert set(lines[1]) <= set("|:- ")  # the pipe-table rule under the header
    assert [ln.split("|")[1].strip() for ln in lines[2:]] == ["tok_b", "tok_a", "tok_c"]  # PSNR descending
    row_b = [c.strip() for c in lines[2].split("|")[1:-1]]
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    cell = dict(zip(header, row_b))
    assert cell["PSNR (dB) ↑"] == "32.46" and cell["SSIM ↑"] == "0.9000" and cell["LPIPS ↓"] == "0.1000"
    assert cell["FVD ↓"] == "—" and cell["bpp"] == "0.2500"
    assert dict(zip(header, [c.strip() for c in lines[3].split("|")[1:-1]]))["FVD ↓"] == "120.0"


def test_sort_is_direction_aware(results, capsys):
    _, out, _ = table(capsys, results, "--sort", "lpips")
    assert [ln.split("|")[1].strip() for ln in out.strip().splitlines()[2:]] == ["tok_c", "tok_b", "tok_a"]
    _, out, _ = table(capsys, results, "--sort", "fvd")  # lower first; missing last, never as 0
    assert [ln.split("|")[1].strip() for ln in out.strip().splitlines()[2:]] == ["tok_c", "tok_a", "tok_b"]
    _, out, _ = table(capsys, results, "--sort", "psnr", "--ascending")
    assert [ln.split("|")[1].strip() for ln in out.strip().splitlines()[2:]] == ["tok_c", "tok_a", "tok_b"]


def test_csv_html_latex(results, capsys, tmp_path):
    rc, out, _ = table(capsys, results, "--format", "csv", "--columns", "psnr", "fvd", "bpp")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert rc == 0 and list(rows[0]) == ["tokenizer", "dataset", "protocol", "psnr", "fvd", "bits_per_pixel"]
    assert rows[0]["tokenizer"] == "tok_b" and rows[0]["fvd"] == "" and float(rows[1]["fvd"]) == 120.0
    _, out, _ = table(capsys, results, "--format", "html")
    assert out.startswith("<table>") and "<th" in out and "—" in out and out.count("<tr>") == 4
    _, out, _ = table(capsys, results, "--format", "latex")
    assert r"\begin{tabular}" in out and r"\end{tabular}" in out
    rules = [ln for ln in out.splitlines() if ln.strip().startswith("\\") and "rule" in ln or ln.strip() == r"\hline"]
    assert rules == [r"\toprule", r"\midrule", r"\bottomrule"]  # booktabs, as papers set tables
    assert out.splitlines().index(r"\midrule") == 3  # directly under the header row
    assert r"tok\_b" in out and r"PSNR (dB) $\uparrow$" in out and "—" in out
    dest = tmp_path / "t.md"
    rc, out, _ = table(capsys, results, "-o", dest)
    assert rc == 0 and out == "" and dest.read_text().startswith("| Tokenizer")


def test_mark_best_bolds_each_metric_s_best_by_its_direction(tmp_path, capsys):
    """Higher PSNR and lower LPIPS/FVD are best (the metrics' declared directions); a tie at the displayed precision
    marks both; bpp (no direction) and a column with one value mark nothing; csv stays plain."""
    root = tmp_path / "r"
    simple_run(root / "a", tokenizer="tok_a", psnr=30.004, lpips=0.2, fvd=120.0)
    simple_run(root / "b", tokenizer="tok_b", psnr=30.001, lpips=0.1, fvd=None)
    simple_run(root / "c", tokenizer="tok_c", psnr=28.0, lpips=0.05, fvd=None)
    _, out, _ = table(capsys, root, "--mark-best", "--columns", "psnr", "lpips", "fvd", "bpp")
    rows = {r[0]: r[3:] for r in ([c.strip() for c in ln.split("|")[1:-1]] for ln in out.strip().splitlines()[2:])}
    assert rows["tok_a"][0] == rows["tok_b"][0] == "**30.00**" and rows["tok_c"][0] == "28.00"  # a tie as shown
    assert rows["tok_c"][1] == "**0.0500**" and rows["tok_a"][1] == "0.2000"
    assert rows["tok_a"][2] == "120.0" and not any("**" in r[3] for r in rows.values())
    _, out, _ = table(capsys, root, "--mark-best", "--format", "latex")
    assert r"\textbf{0.0500}" in out and out.count(r"\textbf") == 6  # psnr twice, ssim (all equal) thrice, lpips
    _, out, _ = table(capsys, root, "--mark-best", "--format", "html")
    assert "<b>0.0500</b>" in out and "&lt;b&gt;" not in out
    _, out, _ = table(capsys, root, "--mark-best", "--format", "csv")
    assert "*" not in out and "textbf" not in out
    _, plain, _ = table(capsys, root)
    assert "**" not in plain


def test_missing_metric_is_dash_never_zero(tmp_path, capsys):
    simple_run(tmp_path / "a", tokenizer="a", fvd=None, bits_per_pixel=None)
    _, out, _ = table(capsys, tmp_path / "a" / "results.json", "--columns", "fvd", "bpp", "psnr")
    row = [c.strip() for c in out.strip().splitlines()[2].split("|")[1:-1]]
    assert row[3:] == ["—", "—", "30.00"]


def test_newest_result_wins_and_is_reported(tmp_path, capsys):
    simple_run(tmp_path / "old", tokenizer="t", psnr=25.0, date="2025-06-01T00:00:00")
    simple_run(tmp_path / "new", tokenizer="t", psnr=26.0, date="2026-06-01T00:00:00+00:00")
    simple_run(tmp_path / "older", tokenizer="t", psnr=24.0, date="2024-06-01T00:00:00+00:00")
    rc, out, err = table(capsys, tmp_path)
    assert rc == 0 and len(out.strip().splitlines()) == 3 and "26.00" in out
    assert "3 results for t/synthetic/vidtok" in err and "new" in err


def test_unknown_column_and_bad_input(results, tmp_path, capsys):
    rc, _, err = table(capsys, results, "--columns", "pnsr")
    assert rc == 2 and "pnsr" in err and len(err.strip().splitlines()) == 1
    rc, _, err = table(capsys, tmp_path / "nowhere")
    assert rc == 2 and "nowhere" in err
    bad = tmp_path / "bad" / "results.json"
    bad.parent.mkdir()
    bad.write_text(json.dumps({"schema": "other"}))
    rc, _, err = table(capsys, bad)
    assert rc == 2 and "schema" in err


README = "# Title\n\nIntro.\n\n" + START + "\nold table\n" + END + "\n\nMore prose.\n"


def test_update_readme_is_idempotent(results, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    rc, out, err = table(capsys, results, "--update", readme)
    assert rc == 0 and out == "" and "updated" in err
    first = readme.read_text()
    assert first.startswith("# Title\n\nIntro.\n\n" + START + "\n| Tokenizer")
    assert first.endswith(END + "\n\nMore prose.\n") and "old table" not in first
    mtime = readme.stat().st_mtime_ns
    rc, _, err = table(capsys, results, "--update", readme)
    assert rc == 0 and readme.read_text() == first and "already up to date" in err
    assert readme.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("text,problem", [
    ("# no markers\n", "found"),
    (START + "\n" + START + "\n" + END + "\n", "2 x"),
    (START + "\n" + END + "\n" + END + "\n", "2 x"),
    (END + "\nx\n" + START + "\n", "before"),
])
def test_marker_errors(text, problem, tmp_path, results, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(text)
    rc, _, err = table(capsys, results, "--update", readme)
    assert rc == 2 and problem in err and str(readme) in err and len(err.strip().splitlines()) == 1
    assert readme.read_text() == text
    with pytest.raises(BenchError):
        update_readme(tmp_path / "missing.md", "x")


_text = st.text(st.characters(blacklist_characters="\r", blacklist_categories=("Cs",)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(before=_text, inside=_text, after=_text, block=_text)
def test_replace_block_keeps_surroundings_and_is_idempotent(before, inside, after, block):
    if any(m in s for s in (before, inside, after, block) for m in (START, END)):
        return
    text = before + START + inside + END + after
    once = replace_block(text, block)
    assert once.startswith(before + START) and once.endswith(END + after)
    assert block.strip("\n") in once
    assert replace_block(once, block) == once


def test_rows_on_different_video_sets_are_flagged(tmp_path, capsys):
    simple_run(tmp_path / "a", tokenizer="a", n=3)
    simple_run(tmp_path / "b", tokenizer="b", n=2)  # same dataset/protocol, one video fewer
    simple_run(tmp_path / "c", tokenizer="c", n=3, data="other clips")
    _, _, err = table(capsys, tmp_path)
    assert "cover different video sets" in err and "b: 2/2 videos" in err
    simple_run(tmp_path / "b", tokenizer="b", n=3)
    (tmp_path / "c" / "results.json").unlink()
    _, _, err = table(capsys, tmp_path)
    assert "different video sets" not in err


def _as_shard(run, index: int, count: int = 2):
    """A fake run made one part of a split run (results.json gains a shard block)."""
    f = run / "results.json"
    data = json.loads(f.read_text())
    data["shard"] = {"index": index, "count": count, "videos": [], "dataset_videos": []}
    f.write_text(json.dumps(data))


def test_only_shard_results_are_refused_and_the_readme_kept(tmp_path, capsys):
    for i in range(2):
        _as_shard(simple_run(tmp_path / "split" / f"shard-{i}-of-2"), i)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    rc, out, err = table(capsys, tmp_path / "split", "--update", readme)
    assert rc == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "no results to tabulate" in err and "skipped 2 shard result(s)" in err and "merge" in err
    assert readme.read_text() == README
    rc, out, _ = table(capsys, tmp_path / "split")
    assert rc == 2 and out == ""


def test_shards_beside_their_merged_result_are_not_noted(tmp_path, capsys):
    merged = simple_run(tmp_path / "split", tokenizer="a")
    for i in range(2):
        _as_shard(simple_run(merged / f"shard-{i}-of-2", tokenizer="a"), i)
    _as_shard(simple_run(tmp_path / "other" / "shard-0-of-2", tokenizer="b"), 0)  # never merged
    rc, out, err = table(capsys, tmp_path)
    assert rc == 0 and "| a " in out and "| b " not in out
    assert "skipped 1 shard result(s)" in err and "other" in err and "split/shard" not in err


def test_duplicate_column_is_named(results, capsys):
    rc, _, err = table(capsys, results, "--columns", "psnr", "bpp", "bits_per_pixel")
    assert rc == 2 and "duplicate column 'bits_per_pixel'" in err and "'bpp'" in err, err
    rc, _, err = table(capsys, results, "--columns", "psnr", "psnr")
    assert rc == 2 and "duplicate column 'psnr'" in err and len(err.strip().splitlines()) == 1


def test_rows_that_only_scored_other_metrics_are_not_flagged(tmp_path, capsys):
    """Equal frames manifests and settings, another metric set (so another data fingerprint): the same clips."""
    def run(name, data, **kw):
        out = simple_run(tmp_path / name, tokenizer=name, data=data, **kw)
        f = out / "results.json"
        d = json.loads(f.read_text())
        d["fingerprint"]["manifest"] = "m" * 64
        f.write_text(json.dumps(d))

    run("a", "with fvd")
    run("b", "without fvd", fvd=None)
    _, _, err = table(capsys, tmp_path)
    assert "different video sets" not in err
    run("c", "other clips")
    f = tmp_path / "c" / "results.json"
    f.write_text(f.read_text().replace('"preprocess": {}', '"preprocess": {"size": 128}'))
    _, _, err = table(capsys, tmp_path)
    assert "different video sets" in err and "dataset.preprocess.size (null vs 128)" in err


def test_csv_loads_into_pandas_as_the_results_numbers(tmp_path, capsys):
    """CSV is for machines: values as results.json holds them, not rounded to the display precision."""
    import pandas as pd

    simple_run(tmp_path / "a", tokenizer="a", psnr=32.123456789012345, lpips=0.1234567, fvd=None, bits_per_pixel=1 / 3)
    rc, out, _ = table(capsys, tmp_path, "--format", "csv", "--columns", "psnr", "lpips", "fvd", "bpp", "videos")
    row = pd.read_csv(io.StringIO(out)).iloc[0]
    stored = json.loads((tmp_path / "a" / "results.json").read_text())
    assert rc == 0 and row["psnr"] == stored["metrics"]["psnr"]["value"] and row["lpips"] == stored["metrics"]["lpips"]["value"]
    assert row["bits_per_pixel"] == 1 / 3 and pd.isna(row["fvd"]) and row["videos"] == 3


def test_markdown_cells_with_a_pipe_keep_their_columns(tmp_path, capsys):
    """A '|' in a cell (a tokenizer name, a metric's definition in `list metrics`) is escaped, not a column break."""
    import re

    def columns(line: str) -> int:
        return len(re.split(r"(?<!\\)\|", line))

    simple_run(tmp_path / "a", tokenizer="tok|v2")
    _, out, _ = table(capsys, tmp_path)
    lines = out.strip().splitlines()
    assert columns(lines[2]) == columns(lines[0]) and r"tok\|v2" in lines[2]
    assert main(["list", "metrics"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert {columns(ln) for ln in lines} == {columns(lines[0])}


def test_a_column_of_differently_defined_values_is_flagged(tmp_path, capsys):
    """Rows of one dataset/protocol whose FVD is another named variant: compare and gate refuse the pair, so the
    table says its FVD column mixes definitions (the clips are the same: no video-set warning)."""
    for name in ("a", "b", "c"):
        simple_run(tmp_path / name, tokenizer=name, fvd=100.0)
    f = tmp_path / "b" / "results.json"
    data = json.loads(f.read_text())
    data["metrics"]["fvd"]["spec"]["variant"] = "clips16"
    f.write_text(json.dumps(data))
    rc, out, err = table(capsys, tmp_path)
    assert rc == 0 and "| a " in out and "| b " in out
    assert err.count("differently defined") == 1 and "column 'fvd' for synthetic/vidtok" in err, err
    assert "metrics.fvd.spec.variant" in err and "clips16" in err and "different video sets" not in err
    f.unlink()
    _, _, err = table(capsys, tmp_path)
    assert "differently defined" not in err
