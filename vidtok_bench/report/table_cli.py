"""``vidtok-bench table``: leaderboard from stored results, optionally written into a README."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .readme import END, START, update_readme
from .table import DEFAULT_COLUMNS, FORMATS, build_table, load_latest, render


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "table",
        help="leaderboard table from results.json files",
        description="One row per (tokenizer, dataset, protocol) from results.json files or directories "
                    "holding them (searched recursively); the newest run wins when several share a key.",
    )
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results.json files or directories")
    p.add_argument("--columns", nargs="+", default=list(DEFAULT_COLUMNS), metavar="COL",
                   help="columns after tokenizer/dataset/protocol: metric names (psnr ssim lpips fvd ...), "
                        "bits_per_pixel (bpp), compression, videos, failed_videos, encode_fps, decode_fps, fps, "
                        f"peak_memory_gib, tflops, mfu, gflop_per_clip, latent_channels, codebook_size, date (default: {' '.join(DEFAULT_COLUMNS)})")
    p.add_argument("--format", choices=FORMATS, default="markdown", help="output format (default markdown)")
    p.add_argument("--sort", default="psnr", metavar="COL",
                   help="sort by this column, best first (direction-aware; default psnr)")
    order = p.add_mutually_exclusive_group()
    order.add_argument("--ascending", dest="ascending", action="store_true", default=None, help="force ascending order")
    order.add_argument("--descending", dest="ascending", action="store_false", help="force descending order")
    p.add_argument("--mark-best", action="store_true",
                   help="set each metric column's best value in bold (markdown/latex/html; by the metric's direction)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the table to FILE instead of stdout")
    p.add_argument("--update", metavar="README",
                   help=f"replace what lies between '{START}' and '{END}' in this file with the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results, notes = load_latest(args.results)
    for note in notes:
        print(f"vidtok-bench: note: {note}", file=sys.stderr)
    text = render(build_table(results, args.columns, sort=args.sort, ascending=args.ascending), args.format,
                  mark_best=args.mark_best)
    if args.update:
        changed = update_readme(args.update, text)
        print(f"{args.update}: results table {'updated' if changed else 'already up to date'} "
              f"({len(results)} rows)", file=sys.stderr)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    elif not args.update:
        sys.stdout.write(text)
    return 0
