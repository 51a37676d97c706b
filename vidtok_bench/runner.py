"""The evaluation runner: wires the stages (reading, model, scoring, store, assembly) for one run.

Decoding overlaps the model (a background reader). Each finished video is appended to
``per_clip.jsonl`` at once, so an interrupted run resumes where it stopped; a broken video is
recorded as failed and the run goes on. Seeding is scoped to the run; global torch flags are set
only inside the model's precision scope.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from .config import RunPlan, plan_dataset, plan_run
from .errors import BenchError
from .hashing import fingerprint
from .distributed import part_videos, shard_dirname
from .registry import TOKENIZERS
from .results import Result, ShardBlock, VideoRecord
from .stages.assemble import assemble
from .stages.model import ModelStage
from .stages.reader import ClipReader
from .stages.scoring import ScoringStage
from .stages.store import RunStore


class Runner:
    def __init__(self, cfg: dict[str, Any] | RunPlan):
        self.plan = plan = cfg if isinstance(cfg, RunPlan) else plan_run(cfg)
        self.tokenizer = TOKENIZERS.build(plan.cfg["tokenizer"], device=str(plan.device))
        self.dataset_plan = plan_dataset(plan.cfg, self.tokenizer)
        self.dataset = self.dataset_plan.build()
        self.scoring = ScoringStage.from_plan(plan, plan.device)
        self.model = ModelStage(self.tokenizer, plan.device, plan.precision)
        self.output_dir = plan.output_dir or Path("outputs") / self.tokenizer.name / f"{self.dataset.name}-{plan.protocol['name']}"
        # a shard (shard=I/N, or torchrun rank I) keeps its part in OUT/shard-I-of-N; merging writes OUT
        self.store = RunStore(self.output_dir / shard_dirname(*plan.shard) if plan.shard else self.output_dir)

    def fingerprints(self, video_ids: list[str], weights_sha256: str | None = None) -> dict[str, str]:
        """``data``: what was evaluated and how; ``config``: that plus the tokenizer's configuration,
        its weights' sha256 (once loaded) and the precision."""
        data = {"dataset": self.dataset_plan.fingerprint_view(), "protocol": self.plan.protocol, "videos": video_ids,
                "metrics": {n: m.spec() for n, m in self.scoring.metrics.items()}}
        tok = {k: v for k, v in self.plan.cfg["tokenizer"].items() if k not in ("device", "checkpoint")}
        tok["weights"] = weights_sha256
        return {"data": fingerprint(data), "config": fingerprint({"data": data, "tokenizer": tok, "precision": self.model.precision.name})}

    def reference_key(self) -> str:
        """What reference-side (real-clip) state depends on: the dataset with its preprocessing and root,
        and the protocol; not the tokenizer, the video list or other metrics, so every tokenizer, shard
        and rank on the same data shares it (set metrics add their own network and frame manifest)."""
        protocol = {k: v for k, v in self.plan.protocol.items() if k != "metric_options"}
        return fingerprint({"dataset": self.dataset_plan.fingerprint_view(), "protocol": protocol,
                            "root": self.dataset_plan.args.get("root")})

    def run(self) -> dict[str, Any]:
        return self.run_result().dump()

    def run_result(self) -> Result:
        from tqdm import tqdm

        started = time.perf_counter()
        videos = self.dataset.videos()[: self.plan.limit]
        fps = self.fingerprints([v.id for v in videos])
        shard = self.plan.shard
        mine = part_videos(self.dataset, videos, shard)
        finished = self.store.open(fps, self.plan.resume, f"{shard[0]}/{shard[1]}" if shard else None)
        if finished:
            self.scoring.load_state(self.store.state_dir)
        for m in self.scoring.set_metrics.values():
            m.set_reference_key(self.reference_key())
        if self.plan.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.plan.device)

        records: dict[str, VideoRecord] = dict(finished)
        todo = [v for v in mine if v.id not in finished]
        bar = tqdm(total=len(mine), initial=len(finished), unit="video", disable=not self.plan.progress, desc=self.tokenizer.name)
        running = RunningMeans(finished.values())
        current: VideoRecord | None = None
        with torch.random.fork_rng(devices=[self.plan.device] if self.plan.device.type == "cuda" else []):
            torch.manual_seed(self.plan.seed)
            try:
                for ev in ClipReader(self.dataset, todo, self.plan.batch_size, self.plan.prefetch):
                    if current is None or current.video != ev.video.id:
                        current = VideoRecord(video=ev.video.id, path=ev.video.path)
                        # seeded per video: sampling tokenizers give the same values however the run is
                        # split into shards or ranks, or resumed
                        torch.manual_seed(video_seed(self.plan.seed, ev.video.id))
                    if ev.kind == "batch":
                        self._process(current, ev.clips)
                        continue
                    if ev.kind == "failed":
                        current.status, current.error = "failed", ev.error
                    if current.status == "failed":
                        self.scoring.discard(current)
                        current.clips = []
                        tqdm.write(f"vidtok-bench: skipped {current.error}")
                    self.store.append(current)
                    records[current.video] = current
                    self.scoring.save_state(self.store.state_dir)
                    bar.update(1)
                    bar.set_postfix_str(running.add(current))
                    current = None
            finally:
                bar.close()

        ordered = [records[v.id] for v in mine if v.id in records]
        info = self.tokenizer.info()
        sha = (info.get("weights") or {}).get("sha256")
        result = assemble(self.plan, info, self.dataset.info(), self.scoring, self.model, ordered,
                          self.fingerprints([v.id for v in videos], sha) if sha else fps,
                          time.perf_counter() - started, resumed=len(finished))
        if shard:
            result.shard = ShardBlock(index=shard[0], count=shard[1], videos=[v.id for v in mine],
                                      dataset_videos=[v.id for v in videos])
        self.store.write(result, ordered, self.scoring.frame_metrics)
        return result

    def _process(self, record: VideoRecord, clips: list) -> None:
        """One batch through the model and the metrics; a BenchError (e.g. a frame size the tokenizer
        refuses) fails the video."""
        if record.status != "ok":
            return
        try:
            video = torch.stack([c.frames for c in clips])
            # the protocol's frame rate (the clips' own when it keeps the native rate): codecs' rate control
            out = self.model(video, self.dataset.preprocess.fps or clips[0].fps or clips[0].source_fps)
            record.clips.extend(self.scoring(clips, video, out))
        except BenchError as exc:
            record.status, record.error = "failed", f"{record.path or record.video}: {exc}"


def video_seed(seed: int, video_id: str) -> int:
    return int(fingerprint([seed, video_id])[:15], 16)


class RunningMeans:
    """Running per-statistic means for the progress bar, updated one finished video at a time."""

    def __init__(self, videos: Any = ()):
        self.sums: dict[str, list[float]] = {}
        for v in videos:
            self.add(v)

    def add(self, video: VideoRecord) -> str:
        for c in video.clips:
            for name, vals in c.stats.items():
                acc = self.sums.setdefault(name, [0.0, 0])
                acc[0] += sum(x for x in vals if x is not None)
                acc[1] += len(vals)
        return " ".join(f"{n}={s / k:.4g}" for n, (s, k) in self.sums.items() if k)


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one evaluation from a composed config dict (see conf/config.yaml)."""
    return Runner(cfg).run()
