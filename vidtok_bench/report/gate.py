"""``vidtok-bench gate``: fail CI when a metric got worse than a committed baseline allows.

Exit codes: 0 every metric within tolerance; 1 at least one regression (each listed with
both values and the allowed tolerance); 2 unusable input — missing/bad file, wrong schema,
results that are not comparable (protocol, dataset or config fingerprint differ), or a
baseline metric the current run lacks. Only a change in the *worse* direction counts
(``metrics[m].higher_is_better``), and tolerances are absolute (``psnr=0.05``) or relative
to the baseline value (``fvd=2%``).
"""
from __future__ import annotations

import argparse
import math
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable

from ..errors import BenchError
from ..results import load_results, metric_value
from .compare import PRECISION, higher_is_better

#: used for metrics that --tolerance does not name
DEFAULT_TOLERANCES = {"psnr": "0.05", "ssim": "0.002", "lpips": "0.002", "fvd": "2%"}
#: pseudo-metric: videos scored without error (a drop means videos failed in the current run)
VIDEOS_OK = "videos_ok"
_TOL_RE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*=\s*([^%\s]+)\s*(%?)\s*$")


@dataclass(frozen=True)
class Tolerance:
    amount: float
    percent: bool = False

    def allowed(self, baseline: float) -> float:
        """How much worse than ``baseline`` a value may be."""
        return abs(baseline) * self.amount / 100 if self.percent else self.amount

    def __str__(self) -> str:
        return f"{self.amount:g}%" if self.percent else f"{self.amount:g}"


def parse_tolerance(text: str) -> tuple[str, Tolerance]:
    """``"psnr=0.05"`` -> ("psnr", Tolerance(0.05)); ``"fvd=2%"`` -> ("fvd", Tolerance(2, percent=True))."""
    m = _TOL_RE.match(text)
    if not m:
        raise BenchError(f"--tolerance '{text}': expected METRIC=NUMBER or METRIC=NUMBER%")
    name, num, pct = m.groups()
    try:
        amount = float(num)
    except ValueError:
        raise BenchError(f"--tolerance '{text}': '{num}' is not a number") from None
    if not math.isfinite(amount) or amount < 0:
        raise BenchError(f"--tolerance '{text}': must be a finite number >= 0")
    return name.lower(), Tolerance(amount, bool(pct))


def parse_tolerances(items: Iterable[str]) -> dict[str, Tolerance]:
    """Several ``METRIC=VALUE`` items (also comma-separated); a metric named twice is an error."""
    out: dict[str, Tolerance] = {}
    for item in items:
        for part in filter(None, (s.strip() for s in item.split(","))):
            name, tol = parse_tolerance(part)
            if name in out:
                raise BenchError(f"--tolerance: '{name}' given twice")
            out[name] = tol
    return out


@dataclass(frozen=True)
class Check:
    metric: str
    baseline: float
    current: float
    higher_is_better: bool
    tolerance: Tolerance

    @property
    def worsening(self) -> float:
        """How much worse current is than baseline (negative: better)."""
        d = self.current - self.baseline
        return -d if self.higher_is_better else d

    @property
    def allowed(self) -> float:
        return self.tolerance.allowed(self.baseline)

    @property
    def regressed(self) -> bool:
        # the slack absorbs float round-off, so "exactly at the tolerance" passes
        slack = 1e-9 * max(1.0, abs(self.baseline), abs(self.current))
        return not (self.worsening <= self.allowed + slack)


def is_regression(baseline: float, current: float, higher_is_better: bool, tolerance: Tolerance) -> bool:
    """Whether ``current`` is worse than ``baseline`` by more than ``tolerance`` allows."""
    return Check("", baseline, current, higher_is_better, tolerance).regressed


def _validate(r: dict[str, Any]) -> None:
    for key in ("protocol", "dataset", "metrics", "fingerprint"):
        if not isinstance(r.get(key), dict):
            raise BenchError(f"{r.get('_path', '?')}: '{key}' missing or not an object; not a usable results file")
    for m, v in r["metrics"].items():
        if not isinstance(v, dict):
            raise BenchError(f"{r.get('_path', '?')}: metrics.{m} is not an object")


def _require_comparable(base: dict[str, Any], cur: dict[str, Any]) -> None:
    _validate(base)
    _validate(cur)
    for key in ("protocol", "dataset"):
        nb = (base.get(key) or {}).get("name")
        nc = (cur.get(key) or {}).get("name")
        if nb != nc:
            raise BenchError(f"{key} differs: baseline {nb!r} ({base['_path']}) vs current {nc!r} ({cur['_path']})")
    for key in ("data", "config"):
        fb = (base.get("fingerprint") or {}).get(key)
        fc = (cur.get("fingerprint") or {}).get(key)
        if fb is None or fc is None:
            raise BenchError(f"{base['_path'] if fb is None else cur['_path']}: no fingerprint.{key}; cannot tell "
                             "whether the runs are comparable")
        if fb != fc:
            raise BenchError(f"fingerprint.{key} differs (baseline {fb[:12]}, current {fc[:12]}): the runs used "
                             f"different {'data/protocol/metric specs' if key == 'data' else 'configurations'}, "
                             "so their numbers are not comparable")


def gate(baseline: dict[str, Any], current: dict[str, Any],
         tolerances: dict[str, Tolerance] | None = None) -> list[Check]:
    """One Check per baseline metric; raises BenchError when the results are not comparable."""
    _require_comparable(baseline, current)
    tolerances = dict(tolerances or {})
    base_metrics = baseline.get("metrics")
    if not isinstance(base_metrics, dict) or not base_metrics:
        raise BenchError(f"{baseline['_path']}: baseline has no metrics to gate on")
    unknown = sorted(set(tolerances) - set(base_metrics) - {VIDEOS_OK})
    if unknown:
        raise BenchError(f"--tolerance names {', '.join(unknown)}, not a metric of the baseline "
                         f"(metrics: {', '.join(base_metrics)})")
    checks = []
    for m in base_metrics:
        vb = metric_value(baseline, m)
        if vb is None or not math.isfinite(vb):
            raise BenchError(f"{baseline['_path']}: baseline metric '{m}' has no value")
        vc = metric_value(current, m)
        if vc is None or not math.isfinite(vc):
            raise BenchError(f"{current['_path']}: metric '{m}' of the baseline is missing from the current results")
        hib = higher_is_better(baseline, m)
        if hib is None:
            raise BenchError(f"{baseline['_path']}: metric '{m}' does not say whether higher is better")
        tol = tolerances.get(m) or parse_tolerance(f"{m}={DEFAULT_TOLERANCES.get(m, '0')}")[1]
        checks.append(Check(m, vb, vc, hib, tol))
    ok_b = (baseline.get("videos") or {}).get("ok")
    ok_c = (current.get("videos") or {}).get("ok")
    if isinstance(ok_b, (int, float)) and isinstance(ok_c, (int, float)):
        # same clips, fewer successes: videos crashed, and the means silently cover fewer of them
        checks.append(Check(VIDEOS_OK, float(ok_b), float(ok_c), True, tolerances.get(VIDEOS_OK, Tolerance(0.0))))
    return checks


def _fmt(v: float, metric: str, signed: bool = False) -> str:
    if metric == VIDEOS_OK:
        return f"{v:+.0f}" if signed else f"{v:.0f}"
    p = PRECISION.get(metric, 4)
    return f"{v:+.{p + 2}f}" if signed else f"{v:.{p + 2}f}"


def render_checks(checks: list[Check]) -> str:
    from tabulate import tabulate

    rows = [[c.metric, "higher" if c.higher_is_better else "lower", _fmt(c.baseline, c.metric),
             _fmt(c.current, c.metric), _fmt(c.current - c.baseline, c.metric, True),
             f"{c.tolerance} (±{c.allowed:.4g})" if c.tolerance.percent else str(c.tolerance),
             "REGRESSED" if c.regressed else ("improved" if c.worsening < 0 else "ok")]
            for c in checks]
    return tabulate(rows, ["metric", "better", "baseline", "current", "Δ", "tolerance", "status"],
                    tablefmt="simple", disable_numparse=True) + "\n"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gate", help="fail (exit 1) when current results regress beyond tolerance",
        description="Compare current results against a baseline. Exit 0: within tolerance; 1: a metric "
                    "regressed; 2: unusable or non-comparable input.")
    p.add_argument("--baseline", required=True, metavar="FILE", help="baseline results.json (or its run directory)")
    p.add_argument("--current", required=True, metavar="FILE", help="current results.json (or its run directory)")
    p.add_argument("--tolerance", nargs="+", default=[], metavar="METRIC=TOL",
                   help="allowed worsening per metric, absolute (psnr=0.05) or relative to the baseline (fvd=2%%); "
                        "defaults: " + " ".join(f"{k}={v}" for k, v in DEFAULT_TOLERANCES.items()).replace("%", "%%")
                        + "; other metrics: 0")  # argparse %-formats help: a literal % must be %%
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tolerances = parse_tolerances(args.tolerance)
    baseline, current = load_results(args.baseline), load_results(args.current)
    checks = gate(baseline, current, tolerances)
    sys.stdout.write(render_checks(checks))
    bad = [c for c in checks if c.regressed]
    for c in bad:
        print(f"REGRESSION {c.metric}: baseline {_fmt(c.baseline, c.metric)}, current {_fmt(c.current, c.metric)} "
              f"({'lower' if c.higher_is_better else 'higher'} is worse; worse by {abs(c.worsening):.6g}, "
              f"allowed {c.allowed:.6g}" + (f" = {c.tolerance} of baseline)" if c.tolerance.percent else ")"))
    if bad:
        print(f"gate: FAILED, {len(bad)} of {len(checks)} checks regressed")
    else:
        print(f"gate: passed, all {len(checks)} checks within tolerance")
    return 1 if bad else 0
