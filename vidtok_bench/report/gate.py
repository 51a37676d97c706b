"""``vidtok-bench gate``: fail CI when a metric got worse than a committed baseline allows.

Exit codes: 0 every metric within tolerance; 1 at least one regression (each listed with
both values and the allowed tolerance); 2 unusable input — missing/bad file, wrong schema,
results that are not comparable (protocol, dataset or config fingerprint differ), or a
baseline metric the current run lacks. Runs whose frames manifests differ are refused naming the
videos; results without a manifest hash are checked by the data fingerprint (a note says so). Only a change in the *worse* direction counts
(``metrics[m].higher_is_better``), and tolerances are absolute (``psnr=0.05``) or relative
to the baseline value (``fvd=2%``); a metric that --tolerance does not name uses the default
its metric declares (``info.tolerance``, recorded in the results).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable

from ..config import TOKENIZER_LOCATION_KEYS
from ..errors import BenchError
from ..results import Result, load_result
from .frames import describe, differences, frames_difference, manifest_note, setup_differences

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
    precision: int = 0

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


def _require_comparable(base: Result, cur: Result) -> None:
    for key in ("protocol", "dataset"):
        nb, nc = getattr(base, key).name, getattr(cur, key).name
        if nb != nc:
            raise BenchError(f"{key} differs: baseline {nb!r} ({base.path}) vs current {nc!r} ({cur.path})")
    differ = frames_difference(base, cur, ("baseline", "current"))
    if differ:
        raise BenchError(f"{differ}, so their numbers are not comparable")
    for key in ("data", "config"):
        fb, fc = getattr(base.fingerprint, key), getattr(cur.fingerprint, key)
        if fb != fc:
            found = sum(setup_differences(base, cur, ("baseline", "current")), []) if key == "data" else _config_differences(base, cur)
            what = (f"they differ in {describe(found)}" if found else
                    f"the runs used different {'data/protocol/metric specs' if key == 'data' else 'configurations'}")
            raise BenchError(f"fingerprint.{key} differs (baseline {fb[:12]}, current {fc[:12]}): {what}, "
                             "so their numbers are not comparable")


def _config_differences(base: Result, cur: Result) -> list[str]:
    """What the config fingerprint adds to the data one, as recorded: the tokenizer's options, weights, precision."""
    def tok(r: Result) -> dict[str, Any]:
        return {"config": {k: v for k, v in r.tokenizer.config.items() if k not in TOKENIZER_LOCATION_KEYS},
                "weights": r.tokenizer.weights}

    return differences(tok(base), tok(cur), "tokenizer") + differences(base.run.precision, cur.run.precision,
                                                                        "run.precision")


def gate(baseline: Result, current: Result, tolerances: dict[str, Tolerance] | None = None) -> list[Check]:
    """One Check per baseline metric (except those :func:`ungated`); raises BenchError when the results are not comparable."""
    _require_comparable(baseline, current)
    tolerances = dict(tolerances or {})
    if not baseline.metrics:
        raise BenchError(f"{baseline.path}: baseline has no metrics to gate on")
    unknown = sorted(set(tolerances) - set(baseline.metrics) - {VIDEOS_OK})
    if unknown:
        raise BenchError(f"--tolerance names {', '.join(unknown)}, not a metric of the baseline "
                         f"(metrics: {', '.join(baseline.metrics)})")
    checks = []
    skipped = ungated(baseline, current, tolerances)
    for m, block in baseline.metrics.items():
        if m in skipped:
            continue
        vb, vc = baseline.value(m), current.value(m)
        if vb is None:
            raise BenchError(f"{baseline.path}: baseline metric '{m}' has no value ({_raw(baseline, m)})")
        if m not in current.metrics:
            raise BenchError(f"{current.path}: metric '{m}' of the baseline is missing from the current results")
        if vc is None:
            raise BenchError(f"{current.path}: metric '{m}' has no value ({_raw(current, m)}) in the current results")
        tol = tolerances.get(m) or declared_tolerance(baseline, m)
        checks.append(Check(m, vb, vc, block.info.higher_is_better, tol, block.info.precision + 2))
    # same clips, fewer successes: videos crashed, and the means silently cover fewer of them
    checks.append(Check(VIDEOS_OK, float(baseline.videos.ok), float(current.videos.ok), True,
                        tolerances.get(VIDEOS_OK, Tolerance(0.0))))
    return checks


def _raw(result: Result, metric: str) -> str:
    """A metric's value as its file spells it: null, NaN or Infinity when it has none."""
    return json.dumps(result.metrics[metric].value)


def declared_tolerance(result: Result, metric: str) -> Tolerance:
    """The tolerance ``result`` records for ``metric`` (``metrics.<m>.info.tolerance``); a bad one is blamed on
    that file, not on --tolerance, which was not given for it."""
    text = result.metrics[metric].info.tolerance
    try:
        return parse_tolerance(f"m={text}")[1]
    except BenchError:
        raise BenchError(f"{result.path}: metrics.{metric}.info.tolerance is {text!r}, not a tolerance (a finite "
                         f"number >= 0, absolute or with %); pass --tolerance {metric}=TOL to gate it") from None


def ungated(baseline: Result, current: Result, tolerances: dict[str, Tolerance] | None = None) -> list[str]:
    """Metrics that neither result gives a value for (e.g. ``codebook`` of a continuous tokenizer) and no
    ``--tolerance`` names: nothing to gate, said in a note rather than refused, so a protocol listing them
    can still gate (a tolerance given for one is refused: there is no value to hold it to)."""
    return [m for m in baseline.metrics if m not in (tolerances or {}) and baseline.value(m) is None
            and m in current.metrics and current.value(m) is None]


def _fmt(c: Check, v: float, signed: bool = False) -> str:
    return f"{v:+.{c.precision}f}" if signed else f"{v:.{c.precision}f}"


def render_checks(checks: list[Check]) -> str:
    from tabulate import tabulate

    rows = [[c.metric, "higher" if c.higher_is_better else "lower", _fmt(c, c.baseline),
             _fmt(c, c.current), _fmt(c, c.current - c.baseline, True),
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
                        "default: the tolerance each metric declares (`vidtok-bench list metrics` shows them)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tolerances = parse_tolerances(args.tolerance)
    baseline, current = load_result(args.baseline), load_result(args.current)
    checks = gate(baseline, current, tolerances)
    note = manifest_note(baseline, current, ("baseline", "current"))
    if note:
        print(f"vidtok-bench: note: {note}", file=sys.stderr)
    skipped = ungated(baseline, current, tolerances)
    if skipped:
        print(f"vidtok-bench: note: not gated, no value in either result: {', '.join(skipped)}", file=sys.stderr)
    sys.stdout.write(render_checks(checks))
    bad = [c for c in checks if c.regressed]
    for c in bad:
        print(f"REGRESSION {c.metric}: baseline {_fmt(c, c.baseline)}, current {_fmt(c, c.current)} "
              f"({'lower' if c.higher_is_better else 'higher'} is worse; worse by {abs(c.worsening):.6g}, "
              f"allowed {c.allowed:.6g}" + (f" = {c.tolerance} of baseline)" if c.tolerance.percent else ")"))
    if bad:
        print(f"gate: FAILED, {len(bad)} of {len(checks)} checks regressed")
    else:
        print(f"gate: passed, all {len(checks)} checks within tolerance")
    return 1 if bad else 0
