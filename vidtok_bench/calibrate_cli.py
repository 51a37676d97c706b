"""``vidtok-bench calibrate``: this install's PSNR, SSIM, LPIPS and DISTS against the published official scores."""
from __future__ import annotations

import argparse
import sys

from .report.table import FORMATS  # the table formats every command shares (imported for `table` already)

# .calibration (torch, PIL, the metrics) is imported by the action only: `vidtok-bench --help` stays cheap.


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="check PSNR/SSIM/LPIPS/DISTS against their official implementations' published scores",
        description="Scores the five TID2013 image pairs of pyiqa's calibration set (its PyPI sdist, sha256-pinned, "
        "fetched once with pip into the cache) with this harness's metrics on the chosen device, and compares each "
        "value with the score the metric's official implementation gives (pyiqa's results_official.csv) to the "
        "digits published. Exit status 0 when every value agrees, 1 when one does not.",
    )
    p.add_argument("--device", default="cpu", help="where the metrics run: cpu (default), cuda, cuda:N or auto")
    p.add_argument("--sdist", metavar="PATH",
                   help="a pyiqa-0.1.16.tar.gz downloaded elsewhere (verified by sha256) instead of fetching it")
    p.add_argument("--format", choices=FORMATS, default="markdown", help="table format (default markdown)")
    p.set_defaults(func=_calibrate)


def _calibrate(args: argparse.Namespace) -> int:
    import torch

    from . import calibration as cal
    from .config import resolve_device
    from .report.table import render

    device = str(resolve_device(args.device))  # a bad or absent device answers before any download
    sdist = args.sdist or cal.fetch_sdist(progress=lambda m: print(m, file=sys.stderr))
    rows = cal.calibrate(cal.read_set(sdist), device=device)
    print(render(cal.as_frame(rows), args.format), end="")
    bad = [r for r in rows if not r.ok]
    print(f"{len(rows) - len(bad)}/{len(rows)} within the published digits on {device} "
          f"(torch {torch.__version__}); source: {cal.SOURCE}", file=sys.stderr)
    for r in bad:
        print(f"MISMATCH {r.metric} {r.image}: ours {r.ours:.6f}, published {r.published} (allowed ±{r.bound:g})",
              file=sys.stderr)
    return 1 if bad else 0
