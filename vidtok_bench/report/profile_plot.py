"""``vidtok-bench profile-plot RUN...``: error profiles of runs, one figure per profile (PNG and SVG).

A metric whose result details hold ``profiles`` (the ``profile`` metric: PSNR and LPIPS by frame
position in the tokenizer's clip or chunk, by distance to a chunk boundary, squared error by
distance to a spatial tile boundary) gives one figure per profile with one line per run, so the
first-frame dip of causal tokenizers and the seams of tiled inference show at a glance. Each
profile carries its own axis labels and the series to draw; nothing here knows a metric by name.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any, Iterable

from ..errors import BenchError
from ..results import find_results, load_result


def collect(paths: Iterable[str | Path]) -> dict[str, list[dict[str, Any]]]:
    """profile name -> one series per run: label, x (keys with values), y, counts, axis labels."""
    out: dict[str, list[dict[str, Any]]] = {}
    files = find_results(paths)
    for p in files:
        r = load_result(p)
        for metric, block in r.metrics.items():
            where = f"metrics.{metric}.details.profiles"
            profiles = block.details.get("profiles") or {}
            if not isinstance(profiles, dict):  # the results schema leaves details free-form: checked here
                raise _invalid(p, where, f"expected an object of profiles, got {_json_type(profiles)}")
            for name, prof in profiles.items():
                try:
                    ys, counts = _series(prof)
                except ValueError as exc:
                    raise _invalid(p, f"{where}.{name}", str(exc)) from None
                pts = [(k, y, c) for k, (y, c) in enumerate(zip(ys, counts)) if c and y is not None]
                if not pts:
                    continue
                label = r.tokenizer.name if len(files) == 1 else f"{r.tokenizer.name} ({Path(p).parent.name})"
                out.setdefault(f"{metric}_{name}", []).append({
                    "label": label, "x": [k for k, _, _ in pts], "y": [y for _, y, _ in pts],
                    "counts": [c for _, _, c in pts], "x_label": str(prof.get("x_label", "key")),
                    "y_label": str(prof.get("y_label", name)), "path": str(p)})
    return out


def _invalid(path: Path, where: str, why: str) -> BenchError:
    """The one-line error of a malformed profile, worded as ``load_result``'s schema errors are."""
    return BenchError(f"{path}: invalid results file: {where}: {why}")


def _json_type(v: Any) -> str:
    """The JSON name of a value's type, as the results file spells it."""
    names = {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string", list: "array", dict: "object"}
    return names.get(type(v), type(v).__name__)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _series(prof: Any) -> tuple[list[Any], list[Any]]:
    """A profile's plotted values (numbers or null) and counts; ValueError says what is malformed."""
    if not isinstance(prof, dict):
        raise ValueError(f"expected an object, got {_json_type(prof)}")
    key = prof.get("plot", "means")
    if not isinstance(key, str):
        raise ValueError(f"plot={key!r} must name the series to draw")
    ys = prof.get(key) or []
    if not isinstance(ys, list) or not all(y is None or _is_number(y) for y in ys):
        raise ValueError(f"{key} must be a list of numbers")
    counts = prof.get("counts")
    if counts is None:
        return ys, [1] * len(ys)
    if not isinstance(counts, list) or len(counts) != len(ys) or not all(_is_number(c) and c >= 0 for c in counts):
        raise ValueError(f"counts must be a list of {len(ys)} non-negative numbers, one per value of {key}")
    return ys, counts


def plot_profile(name: str, series: list[dict[str, Any]], out_dir: Path, title: str | None = None) -> list[Path]:
    """``profile_<name>.png`` and ``.svg`` (SVG text kept as text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .rd import SVG_STYLE, save_png_svg

    markers = "osD^vP*Xhp<>"
    with plt.rc_context(SVG_STYLE):
        fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
        for i, s in enumerate(series):
            ax.plot(s["x"], s["y"], marker=markers[i % len(markers)], markersize=4, label=s["label"])
        ax.set_xlabel(series[0]["x_label"])
        ax.set_ylabel(series[0]["y_label"])
        ax.set_title(title or f"Error profile: {name}")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        return save_png_svg(fig, out_dir, f"profile_{name}")


def write_points(profiles: dict[str, list[dict[str, Any]]], path: Path) -> Path:
    """The plotted numbers as CSV (profile, run, path, key, value, count)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["profile", "run", "path", "key", "value", "count"])
        for name, series in profiles.items():
            for s in series:
                for k, y, c in zip(s["x"], s["y"], s["counts"]):
                    w.writerow([name, s["label"], s["path"], k, y, c])
    return path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "profile-plot", help="error profiles (PSNR by frame position, chunk and tile seams) from results",
        description="Plot the error profiles stored in results (metrics=[profile]): one figure per profile, "
                    "one line per run, as PNG and SVG, plus the numbers as CSV.")
    p.add_argument("results", nargs="+", metavar="RUN", help="run directories or results.json files")
    p.add_argument("-o", "--output", default="profiles", metavar="OUT", help="output directory (default ./profiles)")
    p.add_argument("--title", default=None, help="figure title")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    profiles = collect(args.results)
    if not profiles:
        raise BenchError("no error profiles in these results; run with a profile metric, e.g. 'metrics=[psnr,profile]'")
    out = Path(args.output)
    written = [path for name, series in sorted(profiles.items()) for path in plot_profile(name, series, out, args.title)]
    written.append(write_points(profiles, out / "profile_points.csv"))
    for path in written:
        print(path)
    sys.stdout.flush()
    return 0
