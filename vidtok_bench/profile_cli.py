"""`vidtok-bench profile [KEY=VALUE ...] [-o OUT]`: time and memory of a tokenizer over clip sizes."""
from __future__ import annotations

import argparse
import sys

from .errors import interrupted_status

HELP = """\
Time encode and decode separately and record peak memory, FLOPs and achieved TFLOP/s (MFU on
known GPUs) for every (size, frames[, tiling]) point. Writes OUT/profile.json, profile.csv,
profile.md (table) and profile.png/.svg (time and memory vs pixels per clip). Points that run
out of memory are marked OOM and the sweep goes on; on CPU, points whose estimated activation
memory exceeds max_memory_gb are marked OOM without running.

keys (Hydra-style KEY=VALUE):
  tokenizer=NAME              default trilinear_488; `vidtok-bench list tokenizers`
  sizes=[256,512,720,1080]    frame height; width = height * aspect (aspect=1: square crops)
  frames=[17,33,65]           fitted up to the tokenizer's frame rule (e.g. 4k+1)
  batch=1                     clips per encode/decode call; times and peak memory are per call
  precision=fp32|tf32|bf16|fp16   device=auto|cpu|cuda   repeats=3   warmup=1
  tiling=[false,true]         compare untiled and tiled runs (VidTok v1.1 long mode, diffusers VAEs); a value the
                              tokenizer lacks gives n/a points, a tokenizer without tiling an error
  max_memory_gb=N             skip points estimated to need more (default on CPU: 90% of free RAM)
  cudnn_benchmark=true  plot=true
  formats=[latex,html]        also write profile.tex / profile.html (the table in `vidtok-bench table`'s formats)
  tokenizer.KEY=VALUE         any tokenizer option, e.g. tokenizer.checkpoint=PATH

exit status: 0 when every point was measured or marked OOM (or n/a); 1 when a point failed
otherwise (its error is in profile.md, the other points are written); 2 for a bad argument or an
output folder that cannot be written, found before any point is measured; 130 (Ctrl-C) or 143
(SIGTERM): the points measured so far are written.

example:
  vidtok-bench profile tokenizer=vidtok_kl_causal_488_4chn_v1_1 sizes=[256,512] frames=[17,33] tiling=[false,true] -o prof/
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="time/memory/FLOPs of a tokenizer over clip sizes (KEY=VALUE ...)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("-o", "--output", default=None, metavar="OUT", help="output folder (default outputs/profile/TOKENIZER)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from .profile import ERROR, OK, parse_overrides, run_profile

    spec = parse_overrides(list(args.overrides))
    if args.output:
        spec.output_dir = args.output
    print(f"profiling {spec.tokenizer}: sizes {spec.sizes}, frames {spec.frames}, {spec.precision} on {spec.device}")
    try:
        result = run_profile(spec)
    except KeyboardInterrupt as exc:  # the points done are written (run_profile said where); unlike run, nothing resumes
        status, how = interrupted_status(exc)
        print(f"vidtok-bench: {how}; a profile does not resume: the same command measures every point again",
              file=sys.stderr)
        return status
    points = result["points"]
    skipped = [p for p in points if p["status"] != OK]
    print(f"{len(points) - len(skipped)}/{len(points)} points measured; results: {spec.out_dir() / 'profile.md'}")
    if skipped:
        counts = {s: sum(p["status"] == s for p in skipped) for s in {p["status"] for p in skipped}}
        print("note: " + ", ".join(f"{n} point(s) {s}" for s, n in sorted(counts.items())) + " (see profile.md)")
    return 1 if any(p["status"] == ERROR for p in points) else 0
