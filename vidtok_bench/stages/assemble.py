"""Result assembly: the typed Result of a run from its records, stages and plan."""
from __future__ import annotations

import datetime as _dt
import resource
from typing import Any, Sequence

import torch

from ..config import RunPlan
from ..flops import device_peak_flops, rate_and_mfu
from ..results import FailedVideo, FramesBlock, Memory, Result, RunBlock, Throughput, VideoRecord, VideosBlock
from .model import ModelStage
from .scoring import ScoringStage


def peak_memory(device: torch.device) -> Memory:
    if device.type == "cuda":
        return Memory(peak_bytes=int(torch.cuda.max_memory_allocated(device)), kind="cuda_max_allocated")
    # ru_maxrss is KiB on Linux: the process's peak resident set size
    return Memory(peak_bytes=int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, kind="peak_rss")


def throughput(model: ModelStage) -> Throughput:
    peak = device_peak_flops(model.device, model.precision.name)
    return make_throughput(model.encode_s, model.decode_s, model.clips, model.frames,
                           flops=(model.encode_flops, model.decode_flops), peak_flops=peak)


def make_throughput(enc: float, dec: float, n: int, frames: int, note: str | None = None,
                    flops: tuple[float | None, float | None] = (None, None), peak_flops: float | None = None) -> Throughput:
    """Times and counts as rates; ``flops`` (encode, decode) as TFLOP/s and, against ``peak_flops``, MFU."""
    fe, fd = flops
    total = rate_and_mfu(fe + fd if fe is not None and fd is not None else None, enc + dec, peak_flops)
    return Throughput(
        encode_s=enc, decode_s=dec, clips=n, frames=frames,
        encode_frames_per_s=frames / enc if enc else None, decode_frames_per_s=frames / dec if dec else None,
        frames_per_s=frames / (enc + dec) if enc + dec else None, clips_per_s=n / (enc + dec) if enc + dec else None,
        note=note or "model time only (encode and decode timed separately, synchronised on GPU); clips resumed from an "
                     "earlier run are not counted",
        encode_flops=fe, decode_flops=fd, encode_tflops_per_s=rate_and_mfu(fe, enc, None)["tflops"],
        decode_tflops_per_s=rate_and_mfu(fd, dec, None)["tflops"], tflops_per_s=total["tflops"],
        peak_tflops_per_s=peak_flops / 1e12 if peak_flops else None, mfu=total["mfu"])


def run_status(videos: Sequence[VideoRecord]) -> str:
    """complete: every video evaluated; partial: some failed; empty: no clip scored."""
    ok = [v for v in videos if v.status == "ok"]
    return "empty" if not any(v.clips for v in ok) else ("partial" if len(ok) < len(videos) else "complete")


def record_blocks(scoring: ScoringStage, videos: Sequence[VideoRecord], resumed: int) -> dict[str, Any]:
    """The parts of a result that come from the per-video records and the metrics' state (``videos`` in
    dataset order): the same for a single run and for parts combined in that order."""
    ok = [v for v in videos if v.status == "ok"]
    clips = [c for v in ok for c in v.clips]
    pixels = sum(c.pixels for c in clips)
    return dict(
        metrics=scoring.summarise(videos, [v.video for v in videos]),
        bits_per_pixel=sum(c.bits for c in clips) / pixels if pixels else None,
        frames=FramesBlock(evaluated=sum(c.frames for c in clips), tokenizer_padded=sum(c.tokenizer_padded for c in clips),
                           tail_repeated=sum(c.tail_repeated for c in clips), tail_frames_scored=scoring.scoring.score_tail,
                           nonfinite_clips=[f"{v.video}#{c.clip}" for v in ok for c in v.clips if c.nonfinite]),
        videos=VideosBlock(total=len(videos), ok=len(ok), resumed=resumed,
                           failed=[FailedVideo(video=v.video, path=v.path, error=v.error) for v in videos if v.status != "ok"]),
    )


def assemble(plan: RunPlan, tokenizer_info: dict[str, Any], dataset_info: dict[str, Any], scoring: ScoringStage,
             model: ModelStage, videos: Sequence[VideoRecord], fingerprint: dict[str, str], duration: float,
             resumed: int, env: dict[str, Any]) -> Result:
    """The run's result; ``env`` is :func:`~vidtok_bench.environment.environment` of this process."""
    cfg = plan.cfg
    return Result(
        tokenizer={**tokenizer_info, "config": cfg["tokenizer"]},
        dataset={**dataset_info, "config": cfg["dataset"]},
        protocol=cfg["protocol"],
        scoring=scoring.scoring.record(),
        compression=list(tokenizer_info["compression"]),
        throughput=throughput(model),
        memory=peak_memory(plan.device),
        **record_blocks(scoring, videos, resumed),
        run=RunBlock(status=run_status(videos), device=str(plan.device), precision=model.precision.name,
                     batch_size=plan.batch_size, seed=plan.seed, preprocess_on=plan.preprocess_on, workers=plan.workers,
                     sample_posterior=bool(cfg["tokenizer"].get("sample_posterior", False)),
                     date=_dt.datetime.now(_dt.timezone.utc).isoformat(), duration_s=duration),
        environment=env,
        config=cfg,
        fingerprint=fingerprint,
    )
