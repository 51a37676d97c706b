"""``vidtok-bench compare A B``: what changed from run A to run B, and is it more than noise?

Per metric: A, B, delta (B - A) and a paired bootstrap 95% CI over the videos both runs
scored, weighted as the headline numbers are (by frames, clips or videos: the weighting that
reproduces them). Set metrics (FVD) have no per-video
values, so they get a delta without an interval. Then a per-video breakdown, worst
regression first for one chosen metric. Runs evaluated on different frames (different frames
manifests, naming the videos; or different data fingerprints) are refused unless ``--force``:
their deltas would not mean anything. A metric whose recorded spec differs between the runs
(another variant, network or definition) is never compared, ``--force`` or not.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BenchError
from ..results import PER_VIDEO_FILE, Result, load_result, read_per_video
from .frames import describe, frames_difference, manifest_note, same_clips, setup_differences
from .table import COLUMNS

if TYPE_CHECKING:  # numpy (and pandas) load only when a comparison runs: `--help` stays fast
    import numpy as np

#: fewer paired videos than this never earn a "significant": a bootstrap over 2-4 videos has
#: only a handful of distinct resamples, and its interval says little about other videos
MIN_VIDEOS_FOR_SIGNIFICANCE = 5


def load_run(path: str | Path) -> tuple[Result, Path]:
    """A run's results and its directory (``path`` is the directory or its results.json)."""
    r = load_result(path)
    assert r.run_dir is not None
    return r, r.run_dir


@dataclass
class Comparison:
    a: Result
    b: Result
    metrics: Any  # DataFrame: metric, a, b, delta, ci_low, ci_high, videos, change
    per_video: Any  # DataFrame: video, frames, <m>_a, <m>_b, <m>_delta ... worst first
    sort_metric: str | None
    notes: list[str] = field(default_factory=list)


def compare_runs(a: str | Path, b: str | Path, *, sort_metric: str | None = None, n_resamples: int = 10_000,
                 seed: int = 0, confidence: float = 0.95, force: bool = False) -> Comparison:
    """Compare run B against run A (deltas are B - A)."""
    import numpy as np
    import pandas as pd

    from .bootstrap import bootstrap_mean_ci

    ra, dir_a = load_run(a)
    rb, dir_b = load_run(b)
    notes: list[str] = []
    differ = frames_difference(ra, rb)
    if differ and not force:
        raise BenchError(f"{dir_a} (A) vs {dir_b} (B): {differ}; pass --force to compare anyway")
    notes += [f"compared despite different frames: {differ}"] if differ else []
    notes += [n for n in [manifest_note(ra, rb)] if n]
    fa, fb = ra.fingerprint.data, rb.fingerprint.data
    clip_diffs, metric_diffs = setup_differences(ra, rb)
    if fa != fb and same_clips(ra, rb):  # e.g. one run scored one metric more: each metric is checked below
        # clip-level differences here are how each dataset found the same frames (e.g. a replay of A's manifest)
        what = describe(clip_diffs + metric_diffs) if clip_diffs else f"metrics ({describe(metric_diffs) or 'nothing recorded'})"
        notes.append(f"data fingerprints differ only in {what}; the frames manifests are equal")
    elif fa != fb:
        if ra.fingerprint.manifest is not None and ra.fingerprint.manifest == rb.fingerprint.manifest:
            clip_diffs = setup_differences(ra, rb, same_frames=True)[0]  # the frames are equal: what else differs
        what = f"data fingerprints differ ({fa[:12]} vs {fb[:12]}"
        what += f": {describe(clip_diffs or metric_diffs)})" if clip_diffs or metric_diffs else ")"
        if not force:
            raise BenchError(f"{dir_a} and {dir_b} were not evaluated on the same clips ({what}); "
                             "pass --force to compare anyway")
        notes.append(f"compared despite different data: {what}")

    pva, pvb = read_per_video(dir_a), read_per_video(dir_b)
    for pv, d in ((pva, dir_a), (pvb, dir_b)):
        if pv is None:
            notes.append(f"{d / PER_VIDEO_FILE} missing: no confidence intervals or per-video breakdown")
    common = [] if pva is None or pvb is None else [v for v in pva.index if v in pvb.index]
    if pva is not None and pvb is not None and (len(common) < len(pva) or len(common) < len(pvb)):
        notes.append(f"{len(common)} videos scored in both runs (A: {len(pva)}, B: {len(pvb)}); "
                     "intervals and the per-video table use those only")

    names = [m for m in ra.metrics if m in rb.metrics]
    for m in list(names):  # even with --force: a metric defined differently (e.g. an FVD variant) is never compared
        keys = spec_difference(ra.metrics[m].spec, rb.metrics[m].spec)
        if keys:
            names.remove(m)
            notes.append(f"metric '{m}' is defined differently in A and B ({', '.join(keys)} differ): not compared")
    notes += [f"metric '{m}' only in A" for m in ra.metrics if m not in rb.metrics]
    notes += [f"metric '{m}' only in B" for m in rb.metrics if m not in ra.metrics]

    rows = []
    frame_metrics = []
    for m in names:
        va, vb = ra.value(m), rb.value(m)
        delta = None if va is None or vb is None else vb - va
        hib = rb.metrics[m].info.higher_is_better
        row = {"metric": m, "a": va, "b": vb, "delta": delta, "ci_low": None, "ci_high": None,
               "videos": None, "change": _change(delta, hib)}
        if "set" in (ra.metrics[m].info.kind, rb.metrics[m].info.kind):
            row["change"] += " (set metric: no CI)" if delta else ""
        elif common and m in pva.columns and m in pvb.columns:
            frame_metrics.append(m)
            x = pd.to_numeric(pva.loc[common, m], errors="coerce").to_numpy(float)
            y = pd.to_numeric(pvb.loc[common, m], errors="coerce").to_numpy(float)
            weighting = _weighting(m, (ra, pva), (rb, pvb), notes)
            w = _weights(pva, common, weighting)
            ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(w) & (w > 0)
            if ok.any():
                ci = bootstrap_mean_ci(y[ok] - x[ok], w[ok], n_resamples=n_resamples, seed=seed,
                                       confidence=confidence)
                row.update(ci_low=ci.low, ci_high=ci.high, videos=ci.n)
                if ci.n < MIN_VIDEOS_FOR_SIGNIFICANCE:
                    row["change"] += f" (only {ci.n} videos: no significance call below {MIN_VIDEOS_FOR_SIGNIFICANCE})"
                elif ci.low > 0 or ci.high < 0:
                    row["change"] += " (significant)"
        rows.append(row)
    bpa, bpb = ra.bits_per_pixel, rb.bits_per_pixel
    if bpa is not None or bpb is not None:
        rows.append({"metric": "bits_per_pixel", "a": bpa, "b": bpb,
                     "delta": None if bpa is None or bpb is None else bpb - bpa,
                     "ci_low": None, "ci_high": None, "videos": None, "change": ""})
    metrics_df = pd.DataFrame(rows, columns=["metric", "a", "b", "delta", "ci_low", "ci_high", "videos", "change"])

    if sort_metric is not None and sort_metric not in frame_metrics:
        raise BenchError(f"--metric {sort_metric}: not a per-video metric of both runs "
                         f"(available: {', '.join(frame_metrics) or 'none'})")
    sort_metric = sort_metric or ("psnr" if "psnr" in frame_metrics else (frame_metrics[0] if frame_metrics else None))
    per_video = pd.DataFrame({"video": common})
    if common:
        per_video["frames"] = _weights(pva, common) if "frames" in pva.columns else np.nan
        for m in frame_metrics:
            per_video[f"{m}_a"] = pd.to_numeric(pva.loc[common, m], errors="coerce").to_numpy(float)
            per_video[f"{m}_b"] = pd.to_numeric(pvb.loc[common, m], errors="coerce").to_numpy(float)
            per_video[f"{m}_delta"] = per_video[f"{m}_b"] - per_video[f"{m}_a"]
        if sort_metric:
            sign = -1.0 if rb.metrics[sort_metric].info.higher_is_better else 1.0
            per_video["_regression"] = sign * per_video[f"{sort_metric}_delta"]
            per_video = (per_video.sort_values(["_regression", "video"], ascending=[False, True],
                                               na_position="last", kind="mergesort")
                         .drop(columns="_regression").reset_index(drop=True))
    return Comparison(ra, rb, metrics_df, per_video, sort_metric, notes)


def spec_difference(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Top-level keys whose values differ between two metric specs."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


#: per-video weights that may turn a run's per-video values into its headline value, tried in this order
WEIGHTINGS = ("frames", "clips", "videos")


def headline_weightings(result: Result, pv, metric: str) -> set[str]:
    """The weightings whose weighted mean of a run's per-video values is its headline value: ``frames`` (a mean
    over frames: PSNR under vidtok, SSIM, LPIPS), ``clips`` (a mean over clips: flicker, tLPIPS), ``videos``
    (a mean over videos: PSNR under tokenbench); several when videos are alike. The headline owns how it was
    reduced, so the bootstrap resamples that same mean rather than assuming one."""
    import numpy as np

    target = result.value(metric)
    if target is None or metric not in pv.columns:
        return set()
    values = pd_numeric(pv[metric])
    found = set()
    for weighting in WEIGHTINGS:
        w = _weights(pv, list(pv.index), weighting)
        ok = np.isfinite(values) & np.isfinite(w) & (w > 0)
        if (weighting == "videos" or weighting in pv.columns) and ok.any() and math.isclose(
                float(np.sum(w[ok] * values[ok]) / np.sum(w[ok])), target, rel_tol=1e-9, abs_tol=1e-12):
            found.add(weighting)
    return found


def _weighting(metric: str, a: tuple[Result, Any], b: tuple[Result, Any], notes: list[str]) -> str:
    """The first weighting that reproduces both runs' headlines; frames (with a note) when none does."""
    both = headline_weightings(*a, metric) & headline_weightings(*b, metric)
    if both:
        return next(w for w in WEIGHTINGS if w in both)
    notes.append(f"metric '{metric}': no one weighting of the per-video values ({', '.join(WEIGHTINGS)}) reproduces "
                 "both runs' headline values; its interval weights videos by frames")
    return "frames"


def _weights(pv, common: list[str], weighting: str = "frames") -> np.ndarray:
    import numpy as np

    if weighting == "videos" or weighting not in pv.columns:
        return np.ones(len(common))
    return pd_numeric(pv.loc[common, weighting])


def pd_numeric(s) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(s, errors="coerce").to_numpy(float)


def _change(delta: float | None, hib: bool | None) -> str:
    if delta is None or hib is None:
        return ""
    if delta == 0:
        return "same"
    return "better" if (delta > 0) == hib else "worse"


def precision_of(c: Comparison, metric: str) -> int:
    """Display decimals: the metric's own (from the results), else the field's table column (bits per pixel)."""
    info = c.b.info(metric) or c.a.info(metric)
    return info.precision if info else COLUMNS[metric].precision


def _fmt(v: Any, precision: int, signed: bool = False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:+.{precision}f}" if signed else f"{v:.{precision}f}"


def render_comparison(c: Comparison, top: int = 20, confidence: float = 0.95) -> str:
    """Human-readable report: metric deltas with CIs, then the worst videos."""
    from tabulate import tabulate

    label_a = f"A ({c.a.tokenizer.name})"
    label_b = f"B ({c.b.tokenizer.name})"
    pct = f"{confidence * 100:g}%"
    rows = []
    for r in c.metrics.itertuples(index=False):
        p = precision_of(c, r.metric)
        ci = "—" if r.ci_low is None or (isinstance(r.ci_low, float) and math.isnan(r.ci_low)) \
            else f"[{_fmt(r.ci_low, p, True)}, {_fmt(r.ci_high, p, True)}]"
        n = "—" if r.videos is None or (isinstance(r.videos, float) and math.isnan(r.videos)) else str(int(r.videos))
        rows.append([r.metric, _fmt(r.a, p), _fmt(r.b, p), _fmt(r.delta, p, True), ci, n, r.change])
    out = [f"A: {c.a.path}", f"B: {c.b.path}", "",
           tabulate(rows, ["metric", label_a, label_b, "Δ (B−A)", f"{pct} CI", "videos", "B vs A"],
                    tablefmt="simple", disable_numparse=True,
                    colalign=("left", "right", "right", "right", "right", "right", "left"))]
    if c.sort_metric and len(c.per_video):
        pv = c.per_video if top <= 0 else c.per_video.head(top)
        metrics = [col[:-6] for col in pv.columns if col.endswith("_delta")]
        headers = ["video", "frames"] + [h for m in metrics for h in (f"{m} A", f"{m} B", f"Δ{m}")]
        body = [[r["video"], "—" if math.isnan(r["frames"]) else str(int(r["frames"]))]
                + [x for m in metrics for x in (_fmt(r[f"{m}_a"], precision_of(c, m)), _fmt(r[f"{m}_b"], precision_of(c, m)),
                                                _fmt(r[f"{m}_delta"], precision_of(c, m), True))]
                for _, r in pv.iterrows()]
        shown = f"{len(pv)} of {len(c.per_video)}" if len(pv) < len(c.per_video) else f"all {len(pv)}"
        out += ["", f"Per video, worst {c.sort_metric} first ({shown}):",
                tabulate(body, headers, tablefmt="simple", disable_numparse=True,
                         colalign=["left"] + ["right"] * (len(headers) - 1))]
    return "\n".join(out) + "\n"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="per-metric deltas (B - A) with bootstrap CIs and worst videos",
        description="Compare run B against run A: deltas B - A with paired bootstrap confidence intervals "
                    "over videos, then the videos that got worst first. FVD (a set metric) has no CI.")
    p.add_argument("a", metavar="A", help="baseline run directory (or its results.json)")
    p.add_argument("b", metavar="B", help="run directory to compare against A")
    p.add_argument("--metric", help="per-video table sorted by this metric's regression (default psnr)")
    p.add_argument("--top", type=int, default=20, help="per-video rows to show (0: all; default 20)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--per-video-csv", metavar="FILE", help="also write the full per-video table as CSV")
    p.add_argument("--force", action="store_true", help="compare runs evaluated on different clips")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.confidence < 1:
        raise BenchError(f"--confidence {args.confidence}: must be between 0 and 1")
    if args.resamples < 1:
        raise BenchError(f"--resamples {args.resamples}: must be at least 1")
    c = compare_runs(args.a, args.b, sort_metric=args.metric, n_resamples=args.resamples, seed=args.seed,
                     confidence=args.confidence, force=args.force)
    for note in c.notes:
        print(f"vidtok-bench: note: {note}", file=sys.stderr)
    sys.stdout.write(render_comparison(c, top=args.top, confidence=args.confidence))
    if args.per_video_csv:
        c.per_video.to_csv(args.per_video_csv, index=False)
    return 0
