"""Leaderboard tables built from stored results (never typed by hand).

One row per (tokenizer, dataset, protocol); when several results share a key the newest
(by ``run.date``) wins, so re-running a tokenizer replaces its row. Values stay numeric in
the DataFrame (NaN when missing) and are formatted only when rendered, so a missing metric
can never turn into 0.

    from vidtok_bench.report.table import load_latest, build_table, render
    results, notes = load_latest(["results/"])
    print(render(build_table(results), "markdown"))
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..errors import BenchError
from ..results import Result, load_all
from .frames import describe, differences, same_clips, setup_differences

MISSING = "—"
KEY_COLUMNS = ("tokenizer", "dataset", "protocol")
DEFAULT_COLUMNS = ("compression", "bits_per_pixel", "psnr", "ssim", "lpips", "fvd")
FORMATS = ("markdown", "csv", "html", "latex")


@dataclass(frozen=True)
class Column:
    """How one column is labelled, formatted and ordered."""

    label: str
    precision: int | None = None  # None: not a number (rendered with str)
    higher_is_better: bool | None = None  # None: no direction (no arrow, sort descending)
    unit: str | None = None  # a metric's declared unit, shown in its header (a field's is in its label)


#: columns that are fields of a result; any other name is a metric, whose label, precision and
#: direction are read from the results themselves (``metrics[name].info``, declared by the metric)
COLUMNS: dict[str, Column] = {
    "tokenizer": Column("Tokenizer"),
    "dataset": Column("Dataset"),
    "protocol": Column("Protocol"),
    "bits_per_pixel": Column("bpp", 4),
    "compression": Column("Compression"),
    "videos": Column("Videos", 0),
    "failed_videos": Column("Failed", 0, False),
    "encode_fps": Column("Enc. frames/s", 1, True),
    "decode_fps": Column("Dec. frames/s", 1, True),
    "fps": Column("Frames/s", 1, True),
    "peak_memory_gib": Column("Peak mem. (GiB)", 2, False),
    "tflops": Column("TFLOP/s", 3, True),
    "mfu": Column("MFU", 3, True),
    "gflop_per_clip": Column("GFLOP/clip", 1, False),
    "latent_channels": Column("Latent ch.", 0),
    "codebook_size": Column("Codebook", 0),
    "date": Column("Date"),
}
ALIASES = {"bpp": "bits_per_pixel", "memory": "peak_memory_gib", "throughput": "fps"}


_EXTRACT: dict[str, Callable[[Result], Any]] = {
    "tokenizer": lambda r: r.tokenizer.name,
    "dataset": lambda r: r.dataset.name,
    "protocol": lambda r: r.protocol.name,
    "bits_per_pixel": lambda r: r.bits_per_pixel,
    "compression": lambda r: "x".join(map(str, r.compression)) or None,
    "videos": lambda r: r.videos.ok,
    "failed_videos": lambda r: len(r.videos.failed),
    "encode_fps": lambda r: r.throughput.encode_frames_per_s,
    "decode_fps": lambda r: r.throughput.decode_frames_per_s,
    "fps": lambda r: r.throughput.frames_per_s,
    "peak_memory_gib": lambda r: r.memory.peak_bytes / 2**30,
    "tflops": lambda r: r.throughput.tflops_per_s,
    "mfu": lambda r: r.throughput.mfu,
    "gflop_per_clip": lambda r: _gflop_per_clip(r.throughput),
    "latent_channels": lambda r: r.tokenizer.latent_channels,
    "codebook_size": lambda r: r.tokenizer.codebook_size,
    "date": lambda r: r.run.date,
}


def _gflop_per_clip(t: Any) -> float | None:
    if t.encode_flops is None or t.decode_flops is None or not t.clips:
        return None
    return (t.encode_flops + t.decode_flops) / t.clips / 1e9


def canonical(name: str) -> str:
    """Column name as used internally (``bpp`` -> ``bits_per_pixel``)."""
    n = name.strip().lower()
    return ALIASES.get(n, n)


def column_info(name: str, results: Sequence[Result] = ()) -> Column:
    """Label/precision/direction of a column: a field's from COLUMNS, a metric's from the results."""
    if name in COLUMNS:
        return COLUMNS[name]
    info = next((r.info(name) for r in results if r.info(name) is not None), None) or _registered_info(name)
    if info is None:
        return Column(name, 3)
    return Column(info.label, info.precision, info.higher_is_better, info.unit)


def _registered_info(name: str):
    """A registered metric's declared facts, for a column no result has (shown as missing values)."""
    from ..registry import METRICS

    cls = METRICS.plugins().get(name)
    return cls.info if cls is not None else None


def value(result: Result, name: str) -> Any:
    """One cell's raw value (None when the result does not have it)."""
    if name in _EXTRACT:
        return _EXTRACT[name](result)
    return result.value(name)


def _date(result: Result) -> datetime:
    try:
        d = datetime.fromisoformat(str(result.run.date).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def key_of(result: Result) -> tuple[str, str, str]:
    return tuple(str(value(result, k)) for k in KEY_COLUMNS)  # type: ignore[return-value]


def latest(results: Iterable[Result]) -> tuple[list[Result], list[str]]:
    """Keep the newest result per (tokenizer, dataset, protocol); notes say what was dropped.

    Shard results (one part of a split run: partial values) are left out; a note names them unless a
    whole result of the same configuration fingerprint is there (e.g. the shards were merged in place)."""
    results = list(results)
    whole = {r.fingerprint.config for r in results if r.shard is None}
    groups: dict[tuple[str, str, str], list[Result]] = {}
    shards = []
    for r in results:
        if r.shard is not None:
            if r.fingerprint.config not in whole:
                shards.append(r)
            continue
        groups.setdefault(key_of(r), []).append(r)
    kept, notes = [], []
    if shards:
        notes.append(f"skipped {len(shards)} shard result(s) (a part of a run each, e.g. {shards[0].path}); "
                     "combine them with `vidtok-bench merge`")
    for key, group in groups.items():
        group.sort(key=_date, reverse=True)
        kept.append(group[0])
        if len(group) > 1:
            dropped = ", ".join(f"{g.path} ({g.run.date})" for g in group[1:])
            notes.append(f"{len(group)} results for {'/'.join(key)}: using the newest, "
                         f"{group[0].path} ({group[0].run.date}); ignoring {dropped}")
    return kept, notes


def load_latest(paths: Iterable[str | Path]) -> tuple[list[Result], list[str]]:
    """Load every results.json under ``paths`` and keep the newest per key.

    Refused when nothing is left (only shard results): an empty table would replace a real one in a README."""
    paths = list(paths)
    loaded = load_all(paths)
    kept, notes = latest(loaded)
    if not kept:
        where = ", ".join(map(str, paths))
        raise BenchError(f"no results to tabulate in {where}: skipped {len(loaded)} shard result(s) (a part of a run "
                         f"each, e.g. {loaded[0].path}); combine them with `vidtok-bench merge` first" if loaded
                         else f"no results to tabulate in {where or '(no paths)'}")
    return kept, notes + video_set_notes(kept) + definition_notes(kept)


def _groups(results: Sequence[Result]) -> dict[tuple[str, str], list[Result]]:
    """Rows by (dataset, protocol): the rows a reader compares within a column."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.dataset.name, r.protocol.name), []).append(r)
    return groups


def video_set_notes(results: Sequence[Result]) -> list[str]:
    """Warnings for rows of one dataset/protocol that were not scored on the same videos and clips
    (different data fingerprints, or some videos failed): their numbers are not directly comparable."""
    notes = []
    for (ds, proto), group in _groups(results).items():
        # same clips: equal data fingerprints, or equal frames manifests where only the metrics scored differ
        other = [r for r in group[1:] if not same_clips(group[0], r) or r.videos.ok != group[0].videos.ok]
        if other:
            detail = ", ".join(f"{r.tokenizer.name}: {r.videos.ok}/{r.videos.total} videos, data {r.fingerprint.data[:8]}"
                               for r in group)
            found = setup_differences(group[0], other[0], (group[0].tokenizer.name, other[0].tokenizer.name))[0]
            why = f"; {group[0].tokenizer.name} vs {other[0].tokenizer.name}: {describe(found)}" if found else ""
            notes.append(f"warning: rows for {ds}/{proto} cover different video sets ({detail}{why}); compare them with care")
    return notes


def definition_notes(results: Sequence[Result]) -> list[str]:
    """Warnings for a metric whose recorded spec differs between rows of one dataset/protocol (e.g. another FVD
    variant or LPIPS network): its column would set side by side values that compare and gate refuse to compare."""
    notes = []
    for (ds, proto), group in _groups(results).items():
        for m in dict.fromkeys(m for r in group for m in r.metrics):
            rows = [r for r in group if m in r.metrics]
            other = next((r for r in rows[1:] if r.metrics[m].spec != rows[0].metrics[m].spec), None)
            if other is not None:
                found = differences(rows[0].metrics[m].spec, other.metrics[m].spec, f"metrics.{m}.spec")
                notes.append(f"warning: column '{m}' for {ds}/{proto} holds differently defined values "
                             f"({rows[0].tokenizer.name} vs {other.tokenizer.name}: {describe(found)}); "
                             "they are not comparable")
    return notes


def build_table(results: Sequence[Result], columns: Sequence[str] = DEFAULT_COLUMNS,
                sort: str | None = "psnr", ascending: bool | None = None):
    """Leaderboard DataFrame: key columns then ``columns``; raw values, NaN/None when missing.

    Sorted by ``sort`` in its better-first direction (descending when higher is better)
    unless ``ascending`` says otherwise; rows missing the sort value go last.
    """
    import pandas as pd

    cols = list(KEY_COLUMNS) + [c for c in map(canonical, columns) if c not in KEY_COLUMNS]
    _refuse_duplicates(columns)
    rows = [{c: value(r, c) for c in cols} for r in results]
    known = sorted(set(COLUMNS) | {m for r in results for m in r.metrics})
    for c in cols:
        if results and c not in COLUMNS and not any(c in r.metrics for r in results) and _registered_info(c) is None:
            raise BenchError(f"unknown column '{c}': no result has it; known columns: {', '.join(known)}")
    df = pd.DataFrame(rows, columns=cols)
    if sort:
        s = canonical(sort)
        if results and s not in COLUMNS and not any(s in r.metrics for r in results) and _registered_info(s) is None:
            raise BenchError(f"--sort {sort}: no result has a value for it")
        sort_vals = pd.Series([value(r, s) for r in results], dtype=object)
        info = column_info(s, results)
        asc = ascending if ascending is not None else (info.higher_is_better is False)
        numeric = pd.to_numeric(sort_vals, errors="coerce") if info.precision is not None else sort_vals.astype(str)
        df["_sort"] = numeric.values
        df = df.sort_values(["_sort", *KEY_COLUMNS], ascending=[asc, True, True, True],
                            na_position="last", kind="mergesort").drop(columns="_sort")
    else:
        df = df.sort_values(list(KEY_COLUMNS), kind="mergesort")
    df.attrs["columns"] = {c: column_info(c, results) for c in cols}
    return df.reset_index(drop=True)


def _refuse_duplicates(columns: Sequence[str]) -> None:
    """BenchError naming a column asked for twice, under any spelling (``bpp`` and ``bits_per_pixel``)."""
    given: dict[str, list[str]] = {}
    for name in columns:
        if canonical(name) not in KEY_COLUMNS:
            given.setdefault(canonical(name), []).append(name)
    for col, names in given.items():
        if len(names) > 1:
            spelled = f" (given as {' and '.join(map(repr, names))})" if len(set(names)) > 1 else ""
            raise BenchError(f"duplicate column '{col}' in --columns{spelled}")


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def format_cell(v: Any, col: Column) -> str:
    """Fixed precision per column; missing values are an em dash, never 0."""
    if _is_missing(v):
        return MISSING
    if col.precision is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:.{col.precision}f}"
    return str(v)


def _csv_cell(v: Any) -> str:
    """A CSV cell: the value as results.json holds it (not rounded for display), so ``pd.read_csv`` gives the same
    numbers; missing is an empty cell."""
    if _is_missing(v):
        return ""
    if isinstance(v, float):
        return repr(float(v))
    return str(v)


_LATEX_SPECIAL = re.compile(r"([&%$#_{}~^\\])")
_LATEX_REPL = {"~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def markdown_escape(s: str) -> str:
    """A pipe-table cell: a literal ``|`` would end the cell and shift the row's columns."""
    return s.replace("|", "\\|")


def latex_escape(s: str) -> str:
    return _LATEX_SPECIAL.sub(lambda m: _LATEX_REPL.get(m.group(1), "\\" + m.group(1)), s)


def _header(col: Column, fmt: str) -> str:
    label = col.label + (f" ({col.unit})" if col.unit else "")
    if col.higher_is_better is None:
        return latex_escape(label) if fmt == "latex" else label
    if fmt == "latex":
        return latex_escape(label) + (r" $\uparrow$" if col.higher_is_better else r" $\downarrow$")
    return label + (" ↑" if col.higher_is_better else " ↓")


def booktabs(tabular: str) -> str:
    """A tabulate ``latex_raw`` tabular with booktabs rules (as papers typeset tables; needs ``\\usepackage{booktabs}``):
    its first ``\\hline`` becomes ``\\toprule``, the one under the header ``\\midrule``, the last ``\\bottomrule``."""
    lines = tabular.splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip() == r"\hline"]
    for i, rule in zip(rules[:2] + rules[-1:] if len(rules) >= 3 else [], (r"\toprule", r"\midrule", r"\bottomrule")):
        lines[i] = rule
    return "\n".join(lines)


def best_cells(df, infos: dict[str, Column]) -> set[tuple[int, int]]:
    """(row, column) of each column's best value, as displayed (ties at the column's precision all count), in the
    direction the metric declares; columns without a direction, or with fewer than two values, mark nothing."""
    marked: set[tuple[int, int]] = set()
    for j, c in enumerate(df.columns):
        col = infos[c]
        if col.higher_is_better is None or col.precision is None:
            continue
        shown = {i: round(float(v), col.precision) for i, v in enumerate(df[c])
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and not _is_missing(v)}
        if len(shown) >= 2:
            best = (max if col.higher_is_better else min)(shown.values())
            marked |= {(i, j) for i, v in shown.items() if v == best}
    return marked


#: how a best cell is set in each format (csv stays plain data)
_BOLD = {"markdown": "**{}**", "latex": r"\textbf{{{}}}", "html": "<b>{}</b>"}


def render(df, fmt: str = "markdown", mark_best: bool = False) -> str:
    """Render a :func:`build_table` frame as markdown (pipe), csv, html or latex (booktabs); ``mark_best`` sets each
    metric column's best value in bold (as papers do), by the direction the metric declares."""
    import html

    from tabulate import tabulate

    if fmt not in FORMATS:
        raise BenchError(f"unknown table format '{fmt}'; choose one of {', '.join(FORMATS)}")
    infos: dict[str, Column] = df.attrs.get("columns") or {c: column_info(c) for c in df.columns}
    cols = list(df.columns)
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)  # machine-readable names; missing values are empty cells
        w.writerows([[_csv_cell(v) for v in row] for row in df.itertuples(index=False)])
        return buf.getvalue()
    cells = [[format_cell(v, infos[c]) for c, v in zip(cols, row)] for row in df.itertuples(index=False)]
    headers = [_header(infos[c], fmt) for c in cols]
    align = ["right" if infos[c].precision is not None else "left" for c in cols]
    escape = {"latex": latex_escape, "markdown": markdown_escape, "html": html.escape}[fmt]
    cells = [[escape(c) for c in row] for row in cells]
    for i, j in best_cells(df, infos) if mark_best else ():
        cells[i][j] = _BOLD[fmt].format(cells[i][j])
    if fmt == "latex":
        return booktabs(tabulate(cells, headers, tablefmt="latex_raw", disable_numparse=True, colalign=align)) + "\n"
    if fmt == "markdown":
        headers = [markdown_escape(h) for h in headers]
    else:  # html: cells escaped above, so tabulate must not escape the bold tags again
        headers = [html.escape(h) for h in headers]
    tablefmt = {"markdown": "pipe", "html": "unsafehtml"}[fmt]
    return tabulate(cells, headers, tablefmt=tablefmt, disable_numparse=True, colalign=align) + "\n"
