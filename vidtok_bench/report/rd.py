"""``vidtok-bench rd``: rate–distortion plots (PSNR, LPIPS, ... against bits per pixel).

Every result the table would show is one point (the newest per tokenizer, dataset and protocol;
shard parts left out): x = its measured ``bits_per_pixel``, y = the metric's headline value. Points are grouped into *families*, one curve each (points sorted by rate):
the family each tokenizer plugin declares (``tokenizer.family`` in the results: a codec and its
preset, ``vidtok <kl|fsq> <causal|noncausal> [v1.1]``, else the tokenizer's name). Axis labels
and directions come from the metrics' own declarations recorded in the results.

Results from different datasets or protocols are not comparable; mixing them is an error
unless ``--allow-mixed``, which adds ``[dataset/protocol]`` to each family instead.
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import BenchError, suggest

DEFAULT_METRICS = ("psnr", "lpips")
#: matplotlib settings of every figure the reports write: SVG text kept as text, reproducible ids
SVG_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "vidtok-bench"}


def rd_points(paths: Iterable[str | Path], metrics: Sequence[str], allow_mixed: bool = False) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per result the table would show (the newest per tokenizer/dataset/protocol; no shard parts): family,
    tokenizer, bits_per_pixel and each metric; plus notes."""
    from .table import load_latest

    loaded, notes = load_latest(paths)  # a rerun is one point, and a shard's partial values none
    rows = []
    for r in loaded:
        p = r.path
        bpp = r.bits_per_pixel
        if bpp is None or not float(bpp) > 0:
            notes.append(f"{p}: no bits_per_pixel; left out")
            continue
        row = {"family": r.tokenizer.family, "tokenizer": r.tokenizer.name, "bits_per_pixel": float(bpp),
               "dataset": r.dataset.name, "protocol": r.protocol.name, "path": str(p)}
        for m in metrics:
            row[m] = r.value(m)
            if r.info(m) is not None:
                row[f"{m}.info"] = r.info(m)
        rows.append(row)
    notes += _absent_metrics(metrics, loaded)
    if not rows:
        raise BenchError("no results with bits_per_pixel to plot")
    setups = sorted({(r["dataset"], r["protocol"]) for r in rows}, key=str)
    if len(setups) > 1:
        if not allow_mixed:
            listed = ", ".join(f"{d}/{p}" for d, p in setups)
            raise BenchError(f"results come from different dataset/protocol pairs ({listed}); plot them separately or pass --allow-mixed")
        for r in rows:
            r["family"] = f"{r['family']} [{r['dataset']}/{r['protocol']}]"
    return rows, notes


def _absent_metrics(metrics: Sequence[str], results: Sequence[Any]) -> list[str]:
    """A note per requested metric no result has (with the closest name they have); BenchError when none is there."""
    have = sorted({m for r in results for m in r.metrics})
    absent = [m for m in metrics if m not in have]

    def why(m: str) -> str:
        hint = suggest(m, have)
        return f"no result has metric '{m}'{f' ({hint})' if hint else ''}"

    if absent and len(absent) == len(metrics):
        raise BenchError(f"{'; '.join(map(why, absent))}; these results have: {', '.join(have) or '(no metrics)'}")
    return [f"{why(m)}; no figure for it" for m in absent]


def _minor_label(v: float, _pos: Any = None) -> str:
    if v <= 0:
        return ""
    mant = v / 10 ** math.floor(math.log10(v))
    return f"{v:g}" if round(mant, 6) in (2.0, 5.0) else ""


def plot_rd(rows: list[dict[str, Any]], metric: str, out_dir: str | Path, title: str | None = None) -> list[Path]:
    """Write ``rd_<metric>.png`` and ``.svg`` (text kept as text in the SVG); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    pts = [r for r in rows if r.get(metric) is not None]
    if not pts:
        return []
    families: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in pts:
        families[r["family"]].append(r)
    info = next(r[f"{metric}.info"] for r in pts if f"{metric}.info" in r)
    label = info.label + (f" ({info.unit})" if info.unit else "")
    markers = "osD^vP*Xhp<>"
    with plt.rc_context(SVG_STYLE):
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        for i, (fam, group) in enumerate(sorted(families.items())):
            group = sorted(group, key=lambda r: r["bits_per_pixel"])
            xs = [r["bits_per_pixel"] for r in group]
            ys = [r[metric] for r in group]
            ax.plot(xs, ys, marker=markers[i % len(markers)], linestyle="-" if len(group) > 1 else "none", label=fam)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(_minor_label))  # 0.02, 0.05, 0.2, 0.5, ...
        ax.set_xlabel("bits per pixel (measured)")
        ax.set_ylabel(f"{label} ({'higher' if info.higher_is_better else 'lower'} is better)")
        ax.set_title(title or f"Rate–distortion: {label}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        return save_png_svg(fig, out_dir, f"rd_{metric}")


def save_png_svg(fig: Any, out_dir: str | Path, stem: str) -> list[Path]:
    """Lay out ``fig``, write ``<stem>.png`` and ``<stem>.svg`` (no date in the SVG) into ``out_dir``
    and close it; call it inside :data:`SVG_STYLE` so SVG text stays text. Returns the paths."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.svg"]
    for path in paths:
        fig.savefig(path, metadata={"Date": None} if path.suffix == ".svg" else None)
    plt.close(fig)
    return paths


def write_points(rows: list[dict[str, Any]], metrics: Sequence[str], path: Path) -> Path:
    """The plotted numbers as CSV, so a figure can be checked or redrawn elsewhere."""
    cols = ["family", "tokenizer", "dataset", "protocol", "bits_per_pixel", *metrics, "path"]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in sorted(rows, key=lambda r: (r["family"], r["bits_per_pixel"])):
            w.writerow(r)
    return path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "rd",
        help="rate–distortion plots (metric vs bits per pixel) from results",
        description="Plot each metric against measured bits per pixel, one curve per tokenizer family "
                    "(codec; vidtok kl/fsq causal/noncausal; else the tokenizer), as PNG and SVG.",
    )
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files or directories holding them")
    p.add_argument("-o", "--output", default="rd", metavar="OUT", help="output directory (default ./rd)")
    p.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS), metavar="METRIC",
                   help=f"metrics to plot, one figure each (default: {' '.join(DEFAULT_METRICS)})")
    p.add_argument("--allow-mixed", action="store_true", help="plot results from different datasets/protocols together")
    p.add_argument("--title", default=None, help="figure title")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    rows, notes = rd_points(args.results, args.metrics, allow_mixed=args.allow_mixed)
    for note in notes:
        print(f"vidtok-bench: note: {note}", file=sys.stderr)
    written: list[Path] = []
    for m in args.metrics:
        paths = plot_rd(rows, m, args.output, title=args.title)
        if not paths and any(f"{m}.info" in r for r in rows):  # (a metric no result has was noted above)
            print(f"vidtok-bench: note: no result has a value of metric '{m}'; no figure for it", file=sys.stderr)
        written += paths
    if not written:
        raise BenchError(f"none of the metrics {', '.join(args.metrics)} is in these results")
    written.append(write_points(rows, args.metrics, Path(args.output) / "rd_points.csv"))
    for path in written:
        print(path)
    return 0
