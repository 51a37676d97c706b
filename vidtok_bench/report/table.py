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
from ..results import find_results, load_results, metric_value

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


#: known columns; any other name is looked up in ``results["metrics"]`` (precision 3)
COLUMNS: dict[str, Column] = {
    "tokenizer": Column("Tokenizer"),
    "dataset": Column("Dataset"),
    "protocol": Column("Protocol"),
    "psnr": Column("PSNR", 2, True),
    "ssim": Column("SSIM", 4, True),
    "lpips": Column("LPIPS", 4, False),
    "fvd": Column("FVD", 1, False),
    "bits_per_pixel": Column("bpp", 4),
    "compression": Column("Compression"),
    "videos": Column("Videos", 0),
    "failed_videos": Column("Failed", 0, False),
    "encode_fps": Column("Enc. frames/s", 1, True),
    "decode_fps": Column("Dec. frames/s", 1, True),
    "fps": Column("Frames/s", 1, True),
    "peak_memory_gib": Column("Peak mem. (GiB)", 2, False),
    "latent_channels": Column("Latent ch.", 0),
    "codebook_size": Column("Codebook", 0),
    "date": Column("Date"),
}
ALIASES = {"bpp": "bits_per_pixel", "memory": "peak_memory_gib", "throughput": "fps"}


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


_EXTRACT: dict[str, Callable[[dict[str, Any]], Any]] = {
    "tokenizer": lambda r: r["tokenizer"]["name"],
    "dataset": lambda r: r["dataset"]["name"],
    "protocol": lambda r: r["protocol"]["name"],
    "bits_per_pixel": lambda r: r.get("bits_per_pixel"),
    "compression": lambda r: "x".join(map(str, r.get("compression") or [])) or None,
    "videos": lambda r: _get(r, "videos", "ok"),
    "failed_videos": lambda r: None if _get(r, "videos", "failed") is None else len(r["videos"]["failed"]),
    "encode_fps": lambda r: _get(r, "throughput", "encode_frames_per_s"),
    "decode_fps": lambda r: _get(r, "throughput", "decode_frames_per_s"),
    "fps": lambda r: _get(r, "throughput", "frames_per_s"),
    "peak_memory_gib": lambda r: None if _get(r, "memory", "peak_bytes") is None else r["memory"]["peak_bytes"] / 2**30,
    "latent_channels": lambda r: _get(r, "tokenizer", "latent_channels"),
    "codebook_size": lambda r: _get(r, "tokenizer", "codebook_size"),
    "date": lambda r: _get(r, "run", "date"),
}


def canonical(name: str) -> str:
    """Column name as used internally (``bpp`` -> ``bits_per_pixel``)."""
    n = name.strip().lower()
    return ALIASES.get(n, n)


def column_info(name: str, results: Sequence[dict[str, Any]] = ()) -> Column:
    """Label/precision/direction of a column; a metric's direction comes from the results
    (``metrics[name].higher_is_better``) when they record it."""
    if name in _EXTRACT:
        return COLUMNS[name]
    hib = next((m["higher_is_better"] for r in results
                if isinstance(m := _get(r, "metrics", name), dict) and "higher_is_better" in m), None)
    base = COLUMNS.get(name, Column(name.upper() if len(name) <= 5 else name, 3))
    return Column(base.label, base.precision, bool(hib) if hib is not None else base.higher_is_better)


def value(result: dict[str, Any], name: str) -> Any:
    """One cell's raw value (None when the result does not have it)."""
    if name in _EXTRACT:
        try:
            return _EXTRACT[name](result)
        except (KeyError, TypeError):
            raise BenchError(f"{result.get('_path', '?')}: results file lacks the field needed for column '{name}'") from None
    return metric_value(result, name)


def _date(result: dict[str, Any]) -> datetime:
    raw = _get(result, "run", "date")
    try:
        d = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def key_of(result: dict[str, Any]) -> tuple[str, str, str]:
    return tuple(str(value(result, k)) for k in KEY_COLUMNS)  # type: ignore[return-value]


def latest(results: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Keep the newest result per (tokenizer, dataset, protocol); notes say what was dropped."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(key_of(r), []).append(r)
    kept, notes = [], []
    for key, group in groups.items():
        group.sort(key=_date, reverse=True)
        kept.append(group[0])
        if len(group) > 1:
            dropped = ", ".join(f"{g['_path']} ({_get(g, 'run', 'date')})" for g in group[1:])
            notes.append(f"{len(group)} results for {'/'.join(key)}: using the newest, "
                         f"{group[0]['_path']} ({_get(group[0], 'run', 'date')}); ignoring {dropped}")
    return kept, notes


def load_latest(paths: Iterable[str | Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Load every results.json under ``paths`` and keep the newest per key."""
    return latest(load_results(p) for p in find_results(paths))


def build_table(results: Sequence[dict[str, Any]], columns: Sequence[str] = DEFAULT_COLUMNS,
                sort: str | None = "psnr", ascending: bool | None = None):
    """Leaderboard DataFrame: key columns then ``columns``; raw values, NaN/None when missing.

    Sorted by ``sort`` in its better-first direction (descending when higher is better)
    unless ``ascending`` says otherwise; rows missing the sort value go last.
    """
    import pandas as pd

    cols = list(KEY_COLUMNS) + [c for c in map(canonical, columns) if c not in KEY_COLUMNS]
    if len(set(cols)) != len(cols):
        raise BenchError(f"duplicate column in {list(columns)}")
    rows = [{c: value(r, c) for c in cols} for r in results]
    for c in cols:
        if results and c not in COLUMNS and all(row[c] is None for row in rows):
            known = sorted(set(COLUMNS) | {m for r in results for m in r.get("metrics", {})})
            raise BenchError(f"unknown column '{c}': no result has it; known columns: {', '.join(known)}")
    df = pd.DataFrame(rows, columns=cols)
    if sort:
        s = canonical(sort)
        sort_vals = pd.Series([value(r, s) for r in results], dtype=object)
        if results and s not in COLUMNS and all(v is None for v in sort_vals):
            raise BenchError(f"--sort {sort}: no result has a value for it")
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


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def format_cell(v: Any, col: Column) -> str:
    """Fixed precision per column; missing values are an em dash, never 0."""
    if _is_missing(v):
        return MISSING
    if col.precision is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:.{col.precision}f}"
    return str(v)


_LATEX_SPECIAL = re.compile(r"([&%$#_{}~^\\])")
_LATEX_REPL = {"~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(s: str) -> str:
    return _LATEX_SPECIAL.sub(lambda m: _LATEX_REPL.get(m.group(1), "\\" + m.group(1)), s)


def _header(col: Column, fmt: str) -> str:
    if col.higher_is_better is None:
        return latex_escape(col.label) if fmt == "latex" else col.label
    if fmt == "latex":
        return latex_escape(col.label) + (r" $\uparrow$" if col.higher_is_better else r" $\downarrow$")
    if fmt == "csv":
        return col.label
    return col.label + (" ↑" if col.higher_is_better else " ↓")


def render(df, fmt: str = "markdown") -> str:
    """Render a :func:`build_table` frame as markdown (pipe), csv, html or latex (booktabs)."""
    from tabulate import tabulate

    if fmt not in FORMATS:
        raise BenchError(f"unknown table format '{fmt}'; choose one of {', '.join(FORMATS)}")
    infos: dict[str, Column] = df.attrs.get("columns") or {c: column_info(c) for c in df.columns}
    cols = list(df.columns)
    cells = [[format_cell(v, infos[c]) for c, v in zip(cols, row)] for row in df.itertuples(index=False)]
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)  # machine-readable names; missing values are empty cells
        w.writerows([["" if c == MISSING else c for c in row] for row in cells])
        return buf.getvalue()
    headers = [_header(infos[c], fmt) for c in cols]
    align = ["right" if infos[c].precision is not None else "left" for c in cols]
    if fmt == "latex":
        cells = [[latex_escape(c) for c in row] for row in cells]
        return tabulate(cells, headers, tablefmt="latex_raw",
                        disable_numparse=True, colalign=align) + "\n"
    tablefmt = {"markdown": "pipe", "html": "html"}[fmt]
    return tabulate(cells, headers, tablefmt=tablefmt, disable_numparse=True, colalign=align) + "\n"
