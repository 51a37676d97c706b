"""Fake but schema-valid run directories (results.json + per_video.csv + per_clip.jsonl) for report tests."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from vidtok_bench.hashing import fingerprint
from vidtok_bench.registry import METRICS
from vidtok_bench.results import PER_CLIP_FILE, PER_VIDEO_FILE, RESULTS_FILE, SCHEMA


def info_of(metric: str) -> dict[str, Any]:
    """The registered metric's declared facts (the one owner), as results record them; a made-up
    metric (e.g. 'err') gets generic facts, higher is better."""
    if metric in METRICS.plugins():
        return METRICS.get(metric).info.model_dump()
    return {"label": metric.upper(), "unit": None, "higher_is_better": True, "precision": 3, "tolerance": "0",
            "kind": "frame", "reduction": "mean over frames"}


def make_run(out: Path, *, tokenizer: str = "tok_a", dataset: str = "synthetic", protocol: str = "vidtok",
             per_video: dict[str, dict[str, float]] | None = None, frames: dict[str, int] | None = None,
             metrics: dict[str, float] | None = None, fvd: float | None = 100.0, bits_per_pixel: float | None = 0.25,
             date: str = "2026-01-01T00:00:00+00:00", data: str = "clips-v1", config: str | None = None,
             failed: list[str] = (), family: str | None = None) -> Path:
    """Write a run directory; headline frame-metric values are the frame-weighted means of ``per_video``.

    ``metrics`` overrides/adds headline values (for frame metrics without per-video values).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    per_video = per_video or {}
    frames = frames or {v: 17 for v in per_video}
    names = sorted({m for row in per_video.values() for m in row})
    metric_block: dict[str, Any] = {}
    for m in names:
        num = sum(per_video[v][m] * frames[v] for v in per_video if m in per_video[v])
        den = sum(frames[v] for v in per_video if m in per_video[v])
        metric_block[m] = {"value": num / den, "frames": den, "clips": len(per_video), "videos": len(per_video),
                           "spec": {"name": m}, "info": info_of(m)}
    for m, v in (metrics or {}).items():
        metric_block[m] = {"value": v, "frames": 17, "clips": 1, "videos": 1, "spec": {"name": m}, "info": info_of(m)}
    if fvd is not None:
        metric_block["fvd"] = {"value": fvd, "clips": max(1, len(per_video)), "spec": {"name": "fvd"}, "info": info_of("fvd")}
    data_fp = fingerprint({"data": data, "protocol": protocol, "dataset": dataset})
    config_fp = fingerprint({"data": data_fp, "tokenizer": config or tokenizer})
    result = {
        "schema": SCHEMA,
        "tokenizer": {"name": tokenizer, "plugin": "fake", "family": family or tokenizer, "compression": [4, 8, 8],
                      "causal": True, "frame_rule": "4k+1", "spatial_multiple": 8, "latent_channels": 4,
                      "codebook_size": None, "bits_per_element": 16, "nominal_bits_per_pixel": 0.25, "weights": {},
                      "config": {}},
        "dataset": {"name": dataset, "plugin": "fake", "preprocess": {}, "config": {}},
        "protocol": {"name": protocol},
        "scoring": {"clamp": True, "tail_frames": "scored", "input_range": [-1.0, 1.0], "nonfinite": "replaced"},
        "metrics": metric_block,
        "bits_per_pixel": bits_per_pixel,
        "compression": [4, 8, 8],
        "throughput": {"encode_s": 1.0, "decode_s": 2.0, "encode_frames_per_s": 100.0, "decode_frames_per_s": 50.0,
                       "frames_per_s": 33.3, "clips_per_s": 2.0, "clips": 2, "frames": 34, "note": ""},
        "memory": {"peak_bytes": 2**30, "kind": "peak_rss"},
        "frames": {"evaluated": sum(frames.values()), "tokenizer_padded": 0, "tail_repeated": 0,
                   "tail_frames_scored": True, "nonfinite_clips": []},
        "videos": {"total": len(per_video) + len(failed), "ok": len(per_video), "resumed": 0,
                   "failed": [{"video": v, "path": v, "error": "boom"} for v in failed]},
        "run": {"device": "cpu", "precision": "fp32", "batch_size": 1, "seed": 42, "sample_posterior": False,
                "date": date, "duration_s": 3.0},
        "environment": {"vidtok_bench": "0.1.0"},
        "config": {},
        "fingerprint": {"data": data_fp, "config": config_fp},
    }
    (out / RESULTS_FILE).write_text(json.dumps(result, indent=2))
    with open(out / PER_VIDEO_FILE, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "path", "status", "error", "clips", "frames", *names])
        for v, row in per_video.items():
            w.writerow([v, v, "ok", "", 1, frames[v], *[row.get(m, "") for m in names]])
        for v in failed:
            w.writerow([v, v, "failed", "boom", 0, 0, *[""] * len(names)])
    (out / PER_CLIP_FILE).write_text("")
    return out


def simple_run(out: Path, psnr: float = 30.0, ssim: float = 0.9, lpips: float = 0.1, n: int = 3, **kw: Any) -> Path:
    """A run whose videos all score the same (so headline == per-video values)."""
    pv = {f"v{i}": {"psnr": psnr, "ssim": ssim, "lpips": lpips} for i in range(n)}
    return make_run(out, per_video=pv, **kw)
