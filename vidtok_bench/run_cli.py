"""`vidtok-bench run [KEY=VALUE ...]`: one evaluation, configured with Hydra overrides."""
from __future__ import annotations

import argparse
import sys

from .errors import EXIT_TERMINATED, Terminated

HELP = """\
Evaluate a tokenizer on a dataset under a protocol and write OUT/results.json,
OUT/per_video.csv and OUT/per_clip.jsonl. Arguments are Hydra overrides (KEY=VALUE).

groups (choose one of each; `vidtok-bench list tokenizers|datasets|protocols`):
  tokenizer=NAME   default trilinear_488 (weight-free); e.g. vidtok_kl_causal_488_16chn
  dataset=NAME     default synthetic (needs no download); folder, mcl_jcv, ...
  protocol=NAME    default vidtok (the model card setup); tokenbench, common_metrics

common keys:
  metrics=[psnr,ssim,lpips,fvd]   metrics to compute (default [psnr,ssim])
  device=auto|cpu|cuda            auto picks cuda when available
  precision=fp32|tf32|bf16|fp16   the model's precision (fp32 default: no autocast, TF32 off on CUDA;
                                  tokenizer.precision=... forces one for a single tokenizer)
  batch_size=N  limit=N  seed=N  output_dir=DIR  resume=true|false  overwrite=true|false  progress=true|false
  preprocess_on=auto|cpu|device   where resize + crop run: while decoding (cpu) or on the run's device on
                                  uint8 frames (device); auto: device when device is cuda. Same values (CPU:
                                  identical; GPU: within 1e-5)
  workers=N  prefetch=N           videos decoded at once (null: min(4, CPUs-1)); results never depend on it.
                                  Batches each decodes ahead. (dataset.workers: threads within one video)
  dataset.root=DIR  dataset.fps=30  dataset.size=256  dataset.clip_len=17
  dataset.sampling=stride|timestamps  dataset.tail=repeat|drop  dataset.clip_stride=N
  tokenizer.checkpoint=PATH  tokenizer.KEY=VALUE (any constructor argument)
  shard=I/N                       evaluate part I of N (0-based) into OUT/shard-I-of-N; then `vidtok-bench merge`

many processes, sweeps:
  torchrun --nproc_per_node=N $(which vidtok-bench) run ...   one run over N ranks (NCCL on CUDA, gloo on CPU)
  vidtok-bench run -m tokenizer=a,b dataset=x,y [hydra/launcher=submitit_slurm|submitit_local]
                                  a Hydra sweep: one output directory per job (OUT/KEY=VALUE,...),
                                  resumable; `vidtok-bench table OUT` collects them (OUT: output_dir,
                                  default outputs/sweep). Exits with its worst job's status (below; an
                                  error first, then 143 for a job killed before it finished, then 4,
                                  then 3), naming the jobs that did not end 0.
                                  With --cfg: each job's configuration and directory and the
                                  launcher's settings (hydra.launcher.*); nothing runs or is submitted

exit codes:
  0  every selected video was evaluated       3  some videos failed (results for the rest written, status partial)
  2  configuration error, found before work   4  nothing was evaluated (status empty)
  5  results could not be written during the run (disk full, directory became unwritable); finished
     videos are kept (an output directory that cannot be written at the start is a 2)
  130 interrupted (Ctrl-C), 143 terminated (SIGTERM): finished videos are kept; rerun to resume

output directories: default outputs/<tokenizer>/<dataset>-<protocol>-<config hash>; rerunning a
finished run keeps it (nothing recomputed); work of another configuration is never replaced
unless overwrite=true.

examples:
  vidtok-bench run
  vidtok-bench run tokenizer=vidtok_kl_causal_488_16chn dataset=mcl_jcv dataset.root=/data/mcl_jcv
  vidtok-bench run tokenizer=trilinear_488 dataset=folder dataset.root=videos/ 'metrics=[psnr,ssim]' limit=2
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="evaluate a tokenizer (Hydra overrides: KEY=VALUE ...)", description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Hydra overrides")
    p.add_argument("-m", "--multirun", action="store_true", help="sweep over comma-separated values with Hydra's launcher")
    p.add_argument("--cfg", action="store_true", help="print the resolved configuration and exit (with -m: every job's, "
                   "its directory and the launcher's settings; nothing is run or submitted)")
    p.set_defaults(func=main)


#: exit codes of `run` (documented in --help and the README)
EXIT_OK, EXIT_CONFIG, EXIT_PARTIAL, EXIT_EMPTY, EXIT_IO = 0, 2, 3, 4, 5
# SIGTERM arrives as errors.Terminated: the CLI installs that handler for every command (cli._main)


def main(args: argparse.Namespace) -> int:
    from .config import compose, plan_run

    if args.multirun:
        from .sweep import multirun

        return multirun(list(args.overrides), show_cfg=args.cfg)
    hydra_keys = [o for o in args.overrides if o.lstrip("+~").split("=")[0].split("/")[0].split(".")[0] == "hydra"]
    if hydra_keys:
        from .errors import ConfigError

        raise ConfigError(f"{hydra_keys[0]}: Hydra launcher settings apply to sweeps; add -m")
    cfg = compose(list(args.overrides))
    if args.cfg:
        import yaml

        print(yaml.safe_dump(cfg, sort_keys=False))
        return 0
    plan = plan_run(cfg)  # plain option errors answer here, before torch is imported
    from .distributed import DistEnv, run_distributed

    env = DistEnv.from_environ()
    if env is not None:  # under torchrun: this rank's part, and the one result on rank 0
        try:
            result = run_distributed(plan, env)
        except Terminated:  # the launcher stops the other ranks when one dies: run_distributed said where work is kept
            return EXIT_TERMINATED
        return EXIT_OK if result is None else finish(result)
    from .runner import Runner

    runner = Runner(plan)
    try:
        return run_here(runner)
    except Terminated:
        print(f"vidtok-bench: terminated (SIGTERM); finished videos are kept in {runner.output_dir} — rerun the "
              "same command to resume", file=sys.stderr)
        return EXIT_TERMINATED


def run_here(runner) -> int:
    """Evaluate ``runner``'s run in this process and report it: the run's exit status (``run``, a sweep's job)."""
    try:
        result = runner.run_result()
    except OSError as exc:  # a full disk or a directory that became unwritable mid-run
        print(f"vidtok-bench: error: cannot write in {runner.output_dir}: {exc.strerror or exc}; videos finished "
              "before are kept in per_clip.jsonl — free space and rerun the same command to resume", file=sys.stderr)
        return EXIT_IO
    if runner.already_complete:
        already_complete(runner.output_dir)
    return finish(result)


def already_complete(output_dir) -> None:
    """Say that a rerun found its run finished in ``output_dir`` and kept it."""
    print(f"vidtok-bench: {output_dir} already holds this run, complete; nothing recomputed "
          "(overwrite=true to run it again)", file=sys.stderr)


def finish(result) -> int:
    """Print what a run produced and return its exit status."""
    print_summary(result)
    if result.shard is not None and not result.shard.videos:
        return EXIT_OK  # a part of a split run that got no video: nothing to do is not an error
    if result.run.status == "empty":
        print("vidtok-bench: error: no video was evaluated; results.json records why", file=sys.stderr)
        return EXIT_EMPTY
    if result.run.status == "partial":
        print(f"vidtok-bench: warning: partial result, {len(result.videos.failed)} of {result.videos.total} videos "
              "failed (listed above and in results.json)", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK


def throughput_line(result) -> str | None:
    """Model speed (frames/s, achieved TFLOP/s and MFU where known) and the metrics' share of the model's time."""
    t = result.throughput
    if not t.frames or t.frames_per_s is None:
        return None
    def num(x: float) -> str:  # 3 significant digits, never an exponent
        return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"

    parts = [f"model {num(t.encode_frames_per_s)} frames/s encode, {num(t.decode_frames_per_s)} decode"]
    if t.tflops_per_s is not None:
        parts.append(f"{t.tflops_per_s:.3g} TFLOP/s" + (f" = {t.mfu:.1%} of the device's {t.peak_tflops_per_s:.4g} TFLOP/s peak"
                                                         if t.mfu is not None else ""))
    model_s, per_metric = result.seconds()
    metric_s = sum(per_metric.values())
    if metric_s and model_s:
        parts.append(f"metrics {metric_s:.3g} s = {metric_s / model_s:.0%} of model time")
    return "; ".join(parts)


def print_summary(result) -> None:
    """What a run produced, in the metrics' own labels and precision (read from the result; bits per pixel's
    from its table column)."""
    from .report.table import COLUMNS

    bpp = COLUMNS["bits_per_pixel"].precision
    print(f"{result.tokenizer.name} on {result.dataset.name} ({result.protocol.name} protocol): "
          f"{result.videos.ok}/{result.videos.total} videos, bpp "
          + ("—" if result.bits_per_pixel is None else f"{result.bits_per_pixel:.{bpp}f}"))
    for name, m in result.metrics.items():
        v = result.value(name)
        count = f"{m.frames} frames" if m.info.kind == "frame" else f"{m.clips} clips"
        unit = f" {m.info.unit}" if m.info.unit else ""
        print(f"  {name:<8} {'—' if v is None else f'{v:.{m.info.precision + 2}f}'}{unit}  ({count})")
    speed = throughput_line(result)
    if speed:
        print(f"  {speed}")
    for name, m in result.metrics.items():
        if m.warning:
            print(f"  warning ({name}): {m.warning}", file=sys.stderr)
    nonfinite = result.frames.nonfinite_clips
    if nonfinite:
        print(f"  warning: non-finite reconstructions in {len(nonfinite)} clip(s), e.g. {nonfinite[0]} "
              "(listed in results.json frames.nonfinite_clips)", file=sys.stderr)
    if result.videos.failed:
        print(f"  {len(result.videos.failed)} video(s) failed:", file=sys.stderr)
        for f in result.videos.failed:
            print(f"    {f.error}", file=sys.stderr)
    if result.shard is not None:
        root = result.run_dir.parent if result.run_dir else "OUT"
        print(f"  shard {result.shard.index}/{result.shard.count}: {len(result.shard.videos)} of "
              f"{len(result.shard.dataset_videos)} videos; when all {result.shard.count} are done: "
              f"vidtok-bench merge {root} -o {root}")
    if result.distributed is not None and result.distributed.mode == "torchrun":
        d = result.distributed
        rate = "—" if d.total_frames_per_s is None else f"{d.total_frames_per_s:.1f}"
        print(f"  {d.count} ranks ({d.backend}): {rate} frames/s together, {d.wall_s or 0:.1f} s wall")
    print(f"results: {result.path}")
