"""The evaluation runner: clips in, reconstructions and metrics out, results on disk.

Decoding runs in a background thread (bounded queue) so it overlaps the model. Each
finished video is appended to ``per_clip.jsonl`` at once, so an interrupted run resumes
where it stopped; a broken video is recorded as failed and the run goes on.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import queue
import resource
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import results as R
from .data import Clip, Dataset, Preprocess, VideoRef
from .environment import environment
from .errors import BenchError, ConfigError, check_choice
from .frames import pad_frames
from .metrics.base import FrameMetric, Metric, SetMetric
from .precision import PRECISIONS, autocast
from .registry import DATASETS, METRICS, TOKENIZERS, instantiate
from .tokenizer import Tokenizer

PREPROCESS_KEYS = tuple(Preprocess.__dataclass_fields__)
#: dataset keys that locate data on one machine and so stay out of the data fingerprint
LOCATION_KEYS = ("root",)


# ---------------------------------------------------------------------------- set-up
def resolve_device(name: str | None) -> torch.device:
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device='{name}' is not a valid device (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device='{name}' requested but CUDA is not available on this machine; use device=cpu")
    return dev


def resolve_preprocess(dataset_cfg: dict[str, Any], protocol: dict[str, Any], tokenizer: Tokenizer) -> dict[str, Any]:
    """Dataset keys override the protocol's; ``clip_len: auto`` is the tokenizer's own clip length."""
    out: dict[str, Any] = {}
    for key in PREPROCESS_KEYS:
        v = dataset_cfg.get(key)
        out[key] = protocol.get(key) if v is None else v
    if out["clip_len"] == "auto":
        out["clip_len"] = tokenizer.preferred_clip_len
    elif out["clip_len"] == "whole":
        out["clip_len"] = None
    for key in ("fps", "size"):
        if out[key] == "native":
            out[key] = None
    defaults = Preprocess()
    for key in ("sampling", "crop", "resize", "tail"):
        if out[key] is None:
            out[key] = getattr(defaults, key)
    return out


def build_metrics(names: list[str], protocol: dict[str, Any], device: torch.device) -> dict[str, Metric]:
    options = protocol.get("metric_options") or {}
    out: dict[str, Metric] = {}
    for name in names:
        cls = METRICS.get(name)
        out[name] = cls(device=device, **(options.get(name) or {}))
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        return {"peak_bytes": int(torch.cuda.max_memory_allocated(device)), "kind": "cuda_max_allocated"}
    # ru_maxrss is KiB on Linux: the process's peak resident set size
    return {"peak_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "kind": "peak_rss"}


# ---------------------------------------------------------------------------- reading
_END = object()


def _reader(dataset: Dataset, videos: list[VideoRef], out: "queue.Queue[Any]", stop: threading.Event) -> None:
    """Producer thread: ('clip', video, clip) ... ('done'|'failed', video, error)."""
    try:
        for video in videos:
            if stop.is_set():
                return
            try:
                for clip in dataset.clips(video):
                    while not stop.is_set():
                        try:
                            out.put(("clip", video, clip), timeout=0.5)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return
                out.put(("done", video, None))
            except BenchError as exc:
                out.put(("failed", video, str(exc)))
            except Exception as exc:  # a decoder error must not end the run
                out.put(("failed", video, f"{video.path or video.id}: {type(exc).__name__}: {exc}"))
    finally:
        out.put((_END, None, None))


# ---------------------------------------------------------------------------- records
@dataclass
class VideoRecord:
    video: str
    path: str | None
    status: str = "ok"
    error: str | None = None
    clips: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"video": self.video, "path": self.path, "status": self.status, "error": self.error, "clips": self.clips}


def _load_finished(path: Path) -> dict[str, VideoRecord]:
    """Videos already finished in a previous (interrupted) run; a torn last line is ignored."""
    done: dict[str, VideoRecord] = {}
    if not path.exists():
        return done
    for line in path.read_text().splitlines():
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if d.get("status") == "ok":
            done[d["video"]] = VideoRecord(d["video"], d.get("path"), "ok", None, d.get("clips", []))
    return done


# ---------------------------------------------------------------------------- runner
class Runner:
    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg
        self.device = resolve_device(cfg.get("device"))
        self.precision = cfg.get("precision", "fp32")
        check_choice("precision", self.precision, PRECISIONS)
        if self.device.type == "cuda":
            # cuDNN defaults to TF32 convolutions, which changes fp32 results at the 1e-3 level
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = self.precision == "tf32"
        self.batch_size = int(cfg.get("batch_size") or 1)
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be >= 1")
        self.protocol: dict[str, Any] = dict(cfg["protocol"])
        self.score_tail = bool(self.protocol.get("score_tail_frames", False))
        self.seed = int(cfg.get("seed", 42))
        torch.manual_seed(self.seed)

        tok_cfg = dict(cfg["tokenizer"])
        tok_cfg["device"] = str(self.device)
        self.tokenizer: Tokenizer = instantiate(TOKENIZERS, tok_cfg)

        ds_cfg = dict(cfg["dataset"])
        self.preprocess = resolve_preprocess(ds_cfg, self.protocol, self.tokenizer)
        ds_args = {k: v for k, v in ds_cfg.items() if k not in PREPROCESS_KEYS and k != "defaults"}
        ds_args.update({k: v for k, v in self.preprocess.items()})
        self.dataset: Dataset = instantiate(DATASETS, ds_args)
        self.dataset_args = ds_args

        names = list(cfg.get("metrics") or [])
        if len(set(names)) != len(names):
            raise ConfigError(f"metrics={names} lists a metric twice")
        self.metrics = build_metrics(names, self.protocol, self.device)

        self.output_dir = Path(cfg.get("output_dir") or Path("outputs") / self.tokenizer.name / f"{self.dataset.name}-{self.protocol.get('name')}")
        self.limit = cfg.get("limit")

    # ------------------------------------------------------------------ fingerprints
    def fingerprints(self, video_ids: list[str], weights_sha256: str | None = None) -> dict[str, str]:
        """``data``: what was evaluated and how; ``config``: that plus the tokenizer's configuration
        and, once loaded, its weights' sha256 (at start-up weights may not be loaded yet)."""
        data = {
            "dataset": {k: v for k, v in self.dataset_args.items() if k not in LOCATION_KEYS},
            "protocol": self.protocol,
            "videos": video_ids,
            "metrics": {n: m.spec() for n, m in self.metrics.items()},
        }
        tok = {k: v for k, v in self.cfg["tokenizer"].items() if k not in ("device", "checkpoint")}
        tok["weights"] = weights_sha256
        return {"data": R.fingerprint(data), "config": R.fingerprint({"data": data, "tokenizer": tok, "precision": self.precision})}

    # ------------------------------------------------------------------ one batch
    def _process(self, clips: list[Clip], stats: dict[str, float]) -> list[dict[str, Any]]:
        video = torch.stack([c.frames for c in clips])  # (B,3,T,H,W) float32 [-1,1]
        t = video.shape[2]
        fitted = self.tokenizer.frame_rule.fit_up(t)
        x = pad_frames(video, fitted).to(self.device, non_blocking=True)
        with torch.inference_mode(), autocast(self.device, self.precision):
            _sync(self.device)
            t0 = time.perf_counter()
            latent = self.tokenizer.encode(x)
            _sync(self.device)
            t1 = time.perf_counter()
            recon = self.tokenizer.decode(latent)
            _sync(self.device)
            t2 = time.perf_counter()
        recon = recon.float()[:, :, :t]
        bits = self.tokenizer.latent_bits(latent)
        pixels = x.shape[0] * x.shape[2] * x.shape[3] * x.shape[4]
        stats["encode_s"] += t1 - t0
        stats["decode_s"] += t2 - t1
        stats["clips"] += len(clips)
        stats["frames"] += len(clips) * t
        finite = torch.isfinite(recon).flatten(1).all(dim=1).cpu()
        if not bool(finite.all()):
            recon = torch.nan_to_num(recon, nan=0.0, posinf=1.0, neginf=-1.0)
        real = video.to(self.device)
        per_frame = {n: m.per_frame(real, recon) for n, m in self.metrics.items() if isinstance(m, FrameMetric)}
        ids = [f"{c.video_id}#{c.index}" for c in clips]
        for m in self.metrics.values():
            if isinstance(m, SetMetric):
                m.update(real, recon, ids)
        records = []
        n = len(clips)
        for i, c in enumerate(clips):
            scored = t if self.score_tail else c.valid
            records.append(
                {
                    "clip": c.index,
                    "start": c.start,
                    "frames": scored,
                    "valid": c.valid,
                    "tail_repeated": c.tail_padded,
                    "tokenizer_padded": fitted - t,
                    "bits": bits / n,
                    "pixels": pixels // n,
                    "encode_s": (t1 - t0) / n,
                    "decode_s": (t2 - t1) / n,
                    "nonfinite": not bool(finite[i]),
                    "stats": {name: v[i, :scored].tolist() for name, v in per_frame.items()},
                }
            )
        return records

    # ------------------------------------------------------------------ main loop
    def run(self) -> dict[str, Any]:
        from tqdm import tqdm

        started = time.perf_counter()
        out = self.output_dir
        out.mkdir(parents=True, exist_ok=True)
        clip_log = out / R.PER_CLIP_FILE
        state_dir = out / "state"
        videos = self.dataset.videos()
        if self.limit is not None:
            videos = videos[: int(self.limit)]
        video_ids = self.video_ids = [v.id for v in videos]
        fps = self.fingerprints(video_ids)

        finished: dict[str, VideoRecord] = {}
        meta_file = out / "run_meta.json"
        if self.cfg.get("resume", True) and clip_log.exists() and meta_file.exists():
            prev = json.loads(meta_file.read_text())
            if prev.get("fingerprint") == fps:
                finished = _load_finished(clip_log)
                for name, m in self.metrics.items():
                    if isinstance(m, SetMetric) and (state_dir / f"{name}.pt").exists():
                        m.load_state_dict(torch.load(state_dir / f"{name}.pt", weights_only=True))
            else:
                raise ConfigError(f"{out} holds an unfinished run with a different configuration; choose another output_dir or pass resume=false")
        if not finished:
            clip_log.write_text("")
        meta_file.write_text(json.dumps({"fingerprint": fps, "started": _dt.datetime.now(_dt.timezone.utc).isoformat()}))
        for m in self.metrics.values():
            if isinstance(m, SetMetric):
                m.set_reference_key(R.fingerprint({"data": fps["data"], "root": self.dataset_args.get("root")}))

        todo = [v for v in videos if v.id not in finished]
        records: dict[str, VideoRecord] = dict(finished)
        stats = {"encode_s": 0.0, "decode_s": 0.0, "clips": 0.0, "frames": 0.0}
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

        q: "queue.Queue[Any]" = queue.Queue(maxsize=max(1, int(self.cfg.get("prefetch", 4))))
        stop = threading.Event()
        reader = threading.Thread(target=_reader, args=(self.dataset, todo, q, stop), daemon=True, name="vidtok-bench-reader")
        reader.start()
        bar = tqdm(total=len(videos), initial=len(finished), unit="video", disable=not self.cfg.get("progress", True), desc=self.tokenizer.name)
        current: VideoRecord | None = None
        pending: list[Clip] = []
        running: dict[str, list[float]] = {}
        for rec in finished.values():
            self._postfix(rec, running)

        def flush() -> None:
            """Run the pending batch; a BenchError (e.g. a frame size the tokenizer refuses) fails the video."""
            if pending and current is not None and current.status == "ok":
                try:
                    current.clips.extend(self._process(pending, stats))
                except BenchError as exc:
                    current.status, current.error = "failed", f"{current.path or current.video}: {exc}"
            pending.clear()

        try:
            with clip_log.open("a") as log:
                while True:
                    kind, video, payload = q.get()
                    if kind is _END:
                        break
                    if current is None or current.video != video.id:
                        current = VideoRecord(video.id, video.path)
                    if kind == "clip":
                        if pending and pending[0].frames.shape != payload.frames.shape:
                            flush()
                        pending.append(payload)
                        if len(pending) >= self.batch_size:
                            flush()
                        continue
                    flush()
                    if kind == "failed":
                        current.status, current.error = "failed", payload
                    if current.status == "failed":
                        for m in self.metrics.values():
                            if isinstance(m, SetMetric):
                                m.discard([f"{video.id}#{c['clip']}" for c in current.clips])
                        current.clips = []
                        tqdm.write(f"vidtok-bench: skipped {current.error}")
                    log.write(json.dumps(current.to_json()) + "\n")
                    log.flush()
                    records[video.id] = current
                    self._save_state(state_dir)
                    bar.update(1)
                    bar.set_postfix_str(self._postfix(current, running))
                    current = None
        finally:
            stop.set()
            bar.close()
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()
            reader.join(timeout=5)

        ordered = [records[v.id] for v in videos if v.id in records]
        result = self._summarise(ordered, stats, fps, time.perf_counter() - started, resumed=len(finished))
        self._write(result, ordered)
        return result

    def _save_state(self, state_dir: Path) -> None:
        for name, m in self.metrics.items():
            if isinstance(m, SetMetric):
                state = m.state_dict()
                if state:
                    state_dir.mkdir(exist_ok=True)
                    tmp = state_dir / f"{name}.pt.tmp"
                    torch.save(state, tmp)
                    tmp.replace(state_dir / f"{name}.pt")

    @staticmethod
    def _postfix(video: VideoRecord, running: dict[str, list[float]]) -> str:
        """Running per-frame means for the progress bar, updated with one finished video."""
        for c in video.clips:
            for name, vals in c["stats"].items():
                acc = running.setdefault(name, [0.0, 0])
                acc[0] += sum(vals)
                acc[1] += len(vals)
        return " ".join(f"{n}={s / k:.4g}" for n, (s, k) in running.items() if k)

    # ------------------------------------------------------------------ summary
    def _summarise(self, videos: list[VideoRecord], stats: dict[str, float], fps: dict[str, str], duration: float, resumed: int) -> dict[str, Any]:
        ok = [v for v in videos if v.status == "ok"]
        clips = [c for v in ok for c in v.clips]
        metrics: dict[str, Any] = {}
        for name, m in self.metrics.items():
            if isinstance(m, FrameMetric):
                per_video = [torch.tensor([x for c in v.clips for x in c["stats"][name]], dtype=torch.float64) for v in ok]
                per_video = [t for t in per_video if t.numel()]
                if not per_video:
                    metrics[name] = {"mean": None, "frames": 0, "clips": 0, "videos": 0, "spec": m.spec(), "higher_is_better": m.higher_is_better}
                    continue
                video_values = [m.reduce_video(t) for t in per_video]
                allf = torch.cat(per_video)
                metrics[name] = {
                    "mean": m.reduce_run(allf, video_values),
                    "frames": int(allf.numel()),
                    "clips": len(clips),
                    "videos": len(per_video),
                    "spec": m.spec(),
                    "higher_is_better": m.higher_is_better,
                }
            else:
                res = dict(m.compute()) if clips else {"value": None, "clips": 0}
                res.setdefault("spec", m.spec())
                res["higher_is_better"] = m.higher_is_better
                metrics[name] = res
        bits = sum(c["bits"] for c in clips)
        pixels = sum(c["pixels"] for c in clips)
        n_new, frames_new = int(stats["clips"]), int(stats["frames"])
        enc, dec = stats["encode_s"], stats["decode_s"]
        tok_info = self.tokenizer.info()
        tok_info["config"] = self.cfg["tokenizer"]
        sha = (tok_info.get("weights") or {}).get("sha256")
        if sha:
            fps = self.fingerprints(self.video_ids, sha)
        return {
            "schema": R.SCHEMA,
            "tokenizer": tok_info,
            "dataset": {**self.dataset.info(), "config": self.cfg["dataset"]},
            "protocol": self.protocol,
            "metrics": metrics,
            "bits_per_pixel": bits / pixels if pixels else None,
            "compression": list(self.tokenizer.compression),
            "throughput": {
                "encode_s": enc,
                "decode_s": dec,
                "clips": n_new,
                "frames": frames_new,
                "encode_frames_per_s": frames_new / enc if enc else None,
                "decode_frames_per_s": frames_new / dec if dec else None,
                "frames_per_s": frames_new / (enc + dec) if enc + dec else None,
                "clips_per_s": n_new / (enc + dec) if enc + dec else None,
                "note": "model time only (encode and decode timed separately, synchronised on GPU); clips resumed from an earlier run are not counted",
            },
            "memory": peak_memory(self.device),
            "frames": {
                "evaluated": sum(c["frames"] for c in clips),
                "tokenizer_padded": sum(c["tokenizer_padded"] for c in clips),
                "tail_repeated": sum(c["tail_repeated"] for c in clips),
                "tail_frames_scored": self.score_tail,
                "nonfinite_clips": [f"{v.video}#{c['clip']}" for v in ok for c in v.clips if c["nonfinite"]],
            },
            "videos": {
                "total": len(videos),
                "ok": len(ok),
                "failed": [{"video": v.video, "path": v.path, "error": v.error} for v in videos if v.status != "ok"],
                "resumed": resumed,
            },
            "run": {
                "device": str(self.device),
                "precision": self.precision,
                "batch_size": self.batch_size,
                "seed": self.seed,
                "sample_posterior": bool(self.cfg["tokenizer"].get("sample_posterior", False)),
                "date": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                "duration_s": duration,
            },
            "environment": environment(self.device),
            "config": self.cfg,
            "fingerprint": fps,
        }

    def _write(self, result: dict[str, Any], videos: list[VideoRecord]) -> None:
        import pandas as pd

        out = self.output_dir
        frame_metrics = [n for n, m in self.metrics.items() if isinstance(m, FrameMetric)]
        rows = []
        for v in videos:
            row: dict[str, Any] = {"video": v.video, "path": v.path, "status": v.status, "error": v.error, "clips": len(v.clips), "frames": sum(c["frames"] for c in v.clips)}
            for name in frame_metrics:
                vals = torch.tensor([x for c in v.clips for x in c["stats"][name]], dtype=torch.float64)
                row[name] = self.metrics[name].reduce_video(vals) if vals.numel() else math.nan  # type: ignore[attr-defined]
            rows.append(row)
        pd.DataFrame(rows, columns=["video", "path", "status", "error", "clips", "frames", *frame_metrics]).to_csv(out / R.PER_VIDEO_FILE, index=False)
        tmp = out / (R.RESULTS_FILE + ".tmp")
        tmp.write_text(json.dumps(R.json_safe(result), indent=2, default=str, allow_nan=False))
        tmp.replace(out / R.RESULTS_FILE)


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one evaluation from a resolved config dict (see conf/config.yaml)."""
    return Runner(cfg).run()
