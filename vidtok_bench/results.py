"""The results files a run writes, and loaders for them.

``OUT/results.json`` (schema ``vidtok-bench/results/v1``)::

    {
      "schema": "vidtok-bench/results/v1",
      "tokenizer":  {name, plugin, compression, causal, frame_rule, latent_channels,
                     codebook_size, bits_per_element, nominal_bits_per_pixel,
                     weights: {path, sha256, ...}, config: {...}},
      "dataset":    {name, plugin, preprocess: {...}, config: {...}},
      "protocol":   {name, ...resolved protocol config},
      "metrics":    {"psnr": {"mean", "frames", "clips", "videos", "spec", "higher_is_better"},
                     "fvd":  {"value", "clips", "spec", "higher_is_better", "warning"?}},
      "bits_per_pixel": float,          # measured from the latents actually produced
      "compression": [t, h, w],
      "throughput": {encode_s, decode_s, encode_frames_per_s, decode_frames_per_s,
                     frames_per_s, clips_per_s, clips, frames},
      "memory":     {peak_bytes, kind: "cuda_max_allocated" | "peak_rss"},
      "frames":     {evaluated, tokenizer_padded, tail_repeated},
      "videos":     {total, ok, failed: [{video, path, error}]},
      "run":        {device, precision, batch_size, seed, sample_posterior?, date, duration_s},
      "environment": {vidtok_bench, python, platform, torch, cuda, git_commit, packages: {...}},
      "config":     {...every resolved config value...},
      "fingerprint": {"data": sha256, "config": sha256}
    }

``fingerprint.data`` covers dataset, preprocessing, protocol and metric specs (two results
with equal data fingerprints were evaluated on the same clips the same way);
``fingerprint.config`` adds the tokenizer's configuration (a regression gate compares only
results with equal config fingerprints).

``OUT/per_video.csv``: one row per video (``video, status, error, clips, frames,
<frame metric means>``); ``OUT/per_clip.jsonl``: one JSON object per clip (used to resume).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from .errors import BenchError

SCHEMA = "vidtok-bench/results/v1"
RESULTS_FILE = "results.json"
PER_VIDEO_FILE = "per_video.csv"
PER_CLIP_FILE = "per_clip.jsonl"


def fingerprint(obj: Any) -> str:
    """Stable sha256 of a JSON-serialisable object (key order does not matter)."""
    blob = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def json_safe(obj: Any) -> Any:
    """NaN/inf become null so results.json stays strict JSON (a missing value, never a number)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def find_results(paths: Iterable[str | Path]) -> list[Path]:
    """Expand results.json files and directories holding them (recursively), sorted."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob(RESULTS_FILE))
            if not found:
                raise BenchError(f"{p}: no {RESULTS_FILE} found in this directory")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise BenchError(f"{p}: no such file or directory")
    return out


def load_results(path: str | Path) -> dict[str, Any]:
    """Load one results.json (or the one inside a run directory), checking its schema."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise BenchError(f"{p}: no such results file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{p}: not a valid results.json ({exc})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise BenchError(f"{p}: not a vidtok-bench results file (schema {data.get('schema') if isinstance(data, dict) else None!r}, expected {SCHEMA!r})")
    data["_path"] = str(p)
    return data


def metric_value(result: dict[str, Any], metric: str) -> float | None:
    """A metric's headline number: mean for frame metrics, value for set metrics."""
    m = result.get("metrics", {}).get(metric)
    if not m:
        return None
    v = m.get("mean", m.get("value"))
    return None if v is None else float(v)


def to_frame(paths: Iterable[str | Path]):
    """One row per results file, flat columns — ``pd.DataFrame`` in one line::

        vidtok_bench.results.to_frame(["outputs/"])
    """
    import pandas as pd

    rows = []
    for p in find_results(paths):
        r = load_results(p)
        row: dict[str, Any] = {
            "tokenizer": r["tokenizer"]["name"],
            "dataset": r["dataset"]["name"],
            "protocol": r["protocol"]["name"],
            "bits_per_pixel": r.get("bits_per_pixel"),
            "compression": "x".join(map(str, r.get("compression") or [])),
            "videos": r["videos"]["ok"],
            "failed_videos": len(r["videos"]["failed"]),
            "path": r["_path"],
        }
        for name in r.get("metrics", {}):
            row[name] = metric_value(r, name)
        for k, v in (r.get("throughput") or {}).items():
            row[f"throughput.{k}"] = v
        row["peak_memory_bytes"] = (r.get("memory") or {}).get("peak_bytes")
        rows.append(row)
    return pd.DataFrame(rows)


def per_video_frame(run_dir: str | Path):
    """The per-video table of one run as a DataFrame."""
    import pandas as pd

    return pd.read_csv(Path(run_dir) / PER_VIDEO_FILE)
