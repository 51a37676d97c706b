"""The evaluation runner: wires the stages (reading, model, scoring, store, assembly) for one run.

Decoding overlaps the model (background reader threads, ``workers`` videos at once, delivered in
dataset order); with ``preprocess_on=device`` the clips stay uint8 until the preprocess stage resizes
them on the run's device. Scoring overlaps the model too (``overlap``: a worker thread scores batch i
while the model encodes and decodes batch i+1; torch ops release the GIL, so on a CPU the two share
the cores). Each finished video is appended to
``per_clip.jsonl`` at once, so an interrupted run resumes where it stopped; a broken video is
recorded as failed and the run goes on. The exact frames evaluated go to ``frames_manifest.json``,
whose sha256 is ``fingerprint.manifest``. Seeding is scoped to the run; global torch flags are set
only inside the model's precision scope.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch

from .allocator import release_after_batch
from .config import RUNTIME_KEYS, SPEED_KEYS, TOKENIZER_LOCATION_KEYS, RunPlan, plan_dataset, plan_run
from .distributed import part_videos, shard_dirname
from .environment import code_differences, code_environment, environment
from .errors import BenchError, CheckpointError, ConfigError, WeightsError
from .hashing import fingerprint, video_seed
from .registry import TOKENIZERS
from .results import MANIFEST_FILE, Result, ShardBlock, VideoRecord
from .stages.assemble import assemble
from .stages.manifest import ManifestStage
from .stages.model import ModelStage
from .stages.preprocess import PreprocessStage, clip_frames_for
from .stages.progress import ClipProgress, RunningMeans
from .stages.reader import ClipReader
from .stages.scoring import ScoringStage, ScoringWorker
from .stages.store import RunStore


class Runner:
    def __init__(self, cfg: dict[str, Any] | RunPlan):
        self.plan = plan = cfg if isinstance(cfg, RunPlan) else plan_run(cfg)
        self.tokenizer = TOKENIZERS.build(plan.cfg["tokenizer"], device=str(plan.device))
        self.dataset_plan = plan_dataset(plan.cfg, self.tokenizer)
        self.dataset = self.dataset_plan.build()
        # preprocess_on=device: clips carry uint8 source frames, resized on the run's device just before the model
        self.dataset.clip_frames = clip_frames_for(plan.preprocess_on, plan.device)
        self.preprocess = PreprocessStage(self.dataset.preprocess, plan.device if plan.preprocess_on == "device" else "cpu")
        self.scoring = ScoringStage.from_plan(plan, plan.device, self.tokenizer)
        self.model = ModelStage(self.tokenizer, plan.device, plan.precision)
        self._check_frames_fit_tokenizer()
        self.output_dir = plan.output_dir or self.default_output_dir()
        # a shard (shard=I/N, or torchrun rank I) keeps its part in OUT/shard-I-of-N; merging writes OUT
        self.store = RunStore(self.output_dir / shard_dirname(*plan.shard) if plan.shard else self.output_dir)
        #: set when the same configuration had already finished in output_dir (nothing was recomputed)
        self.already_complete = False

    def default_output_dir(self) -> Path:
        """outputs/<tokenizer>/<dataset>-<protocol>-<hash of the configuration>: never shared by two configurations."""
        cfg = {k: v for k, v in self.plan.cfg.items() if k not in RUNTIME_KEYS}
        cfg["dataset"] = {**cfg["dataset"], **{k: None for k in SPEED_KEYS if k in cfg["dataset"]}}
        return Path("outputs") / self.tokenizer.name / f"{self.dataset.name}-{self.plan.protocol['name']}-{fingerprint(cfg)[:8]}"

    def _check_frames_fit_tokenizer(self) -> None:
        """Refuse, before any decoding, a crop size the tokenizer cannot take."""
        pre, m = self.dataset.preprocess, self.tokenizer.spatial_multiple
        if pre.size and pre.crop == "center" and pre.size % m:
            ok = max(m, pre.size // m * m)
            raise ConfigError(f"dataset.size={pre.size}: tokenizer '{self.tokenizer.name}' needs frame sizes that are "
                              f"multiples of {m} (e.g. dataset.size={ok})")
        mh, mw = self.tokenizer.min_frame_size
        if pre.size and pre.crop == "center" and pre.size < max(mh, mw):
            ok = -(-max(mh, mw) // m) * m
            raise ConfigError(f"dataset.size={pre.size}: tokenizer '{self.tokenizer.name}' needs frames of at least "
                              f"{mh}x{mw} (e.g. dataset.size={ok})")

    def fingerprint_inputs(self, video_ids: list[str], weights_sha256: str | None = None) -> dict[str, Any]:
        """What the fingerprints hash: ``data`` (what was evaluated and how), the tokenizer's configuration with its
        weights' sha256 (once loaded), and the precision."""
        data = {"dataset": self.dataset_plan.fingerprint_view(), "protocol": self.plan.protocol, "videos": video_ids,
                "metrics": {n: m.spec() for n, m in self.scoring.metrics.items()}}
        tok = {k: v for k, v in self.plan.cfg["tokenizer"].items() if k not in TOKENIZER_LOCATION_KEYS}
        tok["weights"] = weights_sha256
        return {"data": data, "tokenizer": tok, "precision": self.model.precision.name}

    def fingerprints(self, video_ids: list[str], weights_sha256: str | None = None) -> dict[str, str]:
        """``data``: what was evaluated and how; ``config``: that plus the tokenizer and the precision."""
        return _fingerprints(self.fingerprint_inputs(video_ids, weights_sha256))

    def reference_key(self) -> str:
        """What reference-side (real-clip) state depends on: the dataset with its preprocessing and root,
        and the protocol; not the tokenizer, the video list or other metrics, so every tokenizer, shard
        and rank on the same data shares it (set metrics add their own network and frame manifest)."""
        protocol = {k: v for k, v in self.plan.protocol.items() if k != "metric_options"}
        return fingerprint({"dataset": self.dataset_plan.fingerprint_view(), "protocol": protocol,
                            "root": self.dataset_plan.args.get("root")})

    def check_whole_dir(self) -> Result | None:
        """The output directory itself (not a shard's) as the ranks of a split run find it, before any of them works:
        this configuration's finished result when resuming (a rerun split another way keeps it, as a single run's
        rerun does); ConfigError, as a single run's, when starting would replace work there and overwrite is not set."""
        if self.plan.overwrite:
            return None
        inputs = self.fingerprint_inputs([v.id for v in self.dataset.videos()[: self.plan.limit]])
        store, fps = RunStore(self.output_dir), _fingerprints(inputs)
        store.refuse_replacing(fps, self.plan.resume, settings=inputs)
        return store.finished(fps) if self.plan.resume else None

    def run(self) -> dict[str, Any]:
        return self.run_result().dump()

    def run_result(self) -> Result:
        started = time.perf_counter()
        videos = self.dataset.videos()[: self.plan.limit]
        inputs = self.fingerprint_inputs([v.id for v in videos])
        fps = _fingerprints(inputs)
        shard = f"{self.plan.shard[0]}/{self.plan.shard[1]}" if self.plan.shard else None
        self.store.lock()
        try:
            done = self.store.finished(fps, shard) if self.plan.resume and not self.plan.overwrite else None
            if done is not None:
                self.already_complete = True
                return done
            info = self.tokenizer.info()  # loads the weights now: a missing checkpoint fails before any decoding
            self.environment = environment(self.plan.device)  # once: results.json records it, run_meta.json its code
            finished = self.store.open(fps, self.plan.resume, self.plan.overwrite, shard,
                                       code_environment(self.environment), inputs)
            if len(self.store.codes) > 1:
                print(f"vidtok-bench: warning: resuming {len(finished)} finished video(s) computed by other code "
                      f"({', '.join(self._code_differences())}); results.json will name each process's",
                      file=sys.stderr)
            return self._evaluate(videos, fps, finished, info, started)
        finally:
            self.store.unlock()

    def _evaluate(self, videos: list, fps: dict[str, str], finished: dict[str, VideoRecord], info: dict[str, Any],
                  started: float) -> Result:
        """Evaluate ``videos`` (this shard's part of them) except those ``finished``."""
        from tqdm import tqdm

        if finished:
            for video in self.scoring.load_state(self.store.state_dir, list(finished)):
                del finished[video]  # its record outlived its set-metric state: evaluate it again
        frames = ManifestStage(self.dataset)
        frames.resume(finished.values())
        for m in self.scoring.set_metrics.values():
            m.set_reference_key(self.reference_key())
        if self.plan.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.plan.device)

        records: dict[str, VideoRecord] = dict(finished)
        mine = part_videos(self.dataset, videos, self.plan.shard)
        todo = [v for v in mine if v.id not in finished]
        bar = ClipProgress(tqdm, len(mine), finished.values(), disable=not self.plan.progress, desc=self.tokenizer.name)
        running = RunningMeans(finished.values())
        current: VideoRecord | None = None
        worker = ScoringWorker(self._score_batch, enabled=self.plan.overlap_scoring, device=self.plan.device)
        with torch.random.fork_rng(devices=[self.plan.device] if self.plan.device.type == "cuda" else []):
            torch.manual_seed(self.plan.seed)
            try:
                for ev in ClipReader(self.dataset, todo, self.plan.batch_size, self.plan.prefetch, self.plan.workers):
                    if current is None or current.video != ev.video.id:
                        current = VideoRecord(video=ev.video.id, path=ev.video.path)
                        # seeded per video: sampling tokenizers give the same values however the run is
                        # split into shards or ranks, or resumed
                        torch.manual_seed(video_seed(self.plan.seed, ev.video.id))
                        self.tokenizer.start_video(ev.video.id)  # and a tokenizer's own stream (VidTok's posterior)
                    if ev.kind == "batch":
                        # scored (in the worker thread when overlapping), then noted in the manifest
                        worker.submit(current, ev.video, ev.clips, self._model(current, ev.clips), frames, bar, running)
                        continue
                    worker.drain()  # every batch of this video scored: its record is final
                    if ev.kind == "failed":
                        current.status, current.error = "failed", ev.error
                    if current.status == "failed":
                        self.scoring.discard(current)
                        current.clips = []
                        tqdm.write(f"vidtok-bench: skipped {current.error}")
                    frames.finish(current)
                    self.store.append(current)
                    records[current.video] = current
                    self.scoring.save_state(self.store.state_dir)
                    bar.video_done(current, running.add(current))
                    current = None
            finally:
                worker.close()
                bar.close()

        ordered = [records[v.id] for v in mine if v.id in records]
        sha = (info.get("weights") or {}).get("sha256")
        manifest = frames.write(self.store.dir / MANIFEST_FILE, [v.id for v in videos])
        env = dict(self.environment)
        if differ := self._code_differences():
            env["resumes_differ"] = differ  # which code computed which videos is not one answer
        result = assemble(self.plan, info, self.dataset.info(), self.scoring, self.model, ordered,
                          {**(self.fingerprints([v.id for v in videos], sha) if sha else fps), "manifest": manifest},
                          time.perf_counter() - started, resumed=len(finished), env=env)
        if self.plan.shard:
            result.shard = ShardBlock(index=self.plan.shard[0], count=self.plan.shard[1], videos=[v.id for v in mine],
                                      dataset_videos=[v.id for v in videos])
        self.store.write(result, ordered, self.scoring.frame_metrics)
        return result

    def _code_differences(self) -> dict[str, dict[str, Any]]:
        """What differs between the code of the processes that worked on this run (a resume after an upgrade)."""
        return code_differences({f"process {i + 1}": c for i, c in enumerate(self.store.codes)})

    def _model(self, record: VideoRecord, clips: list) -> tuple[torch.Tensor, Any] | None:
        """One batch through the model: (the batch, the model's output), or None when the video has failed
        (now, or at an earlier batch). Any error fails this video only, with a one-line message."""
        if record.status != "ok":
            return None
        try:
            video = self.preprocess(clips)  # (B,3,T,H,W) in [-1,1]: on the device with preprocess_on=device
            # the protocol's frame rate (the clips' own when it keeps the native rate): codecs' rate control
            return video, self.model(video, self.dataset.preprocess.fps or clips[0].fps or clips[0].source_fps)
        except Exception as exc:
            _fail(record, exc)
            return None

    def _score_batch(self, record: VideoRecord, video_ref: Any, clips: list, out: tuple[torch.Tensor, Any] | None,
                     frames: ManifestStage, bar: ClipProgress, running: RunningMeans) -> None:
        """One modelled batch through the metrics (a metric error fails this video only), then into the
        frame manifest. Batches are scored in the order the model produced them."""
        if out is not None and record.status == "ok":
            try:
                record.clips.extend(self.scoring(clips, *out))
            except Exception as exc:
                _fail(record, exc)
            release_after_batch(self.plan.device)  # the metrics' freed heap memory (this thread's), before the next batch
        frames.add(record, video_ref, clips)
        bar.clips_done(len(clips), f"{record.video} {running.text()}")


def _fingerprints(inputs: dict[str, Any]) -> dict[str, str]:
    """The fingerprints of :meth:`Runner.fingerprint_inputs`."""
    return {"data": fingerprint(inputs["data"]), "config": fingerprint(inputs)}


#: errors of the run, not of a video: every video would fail the same way (weights a metric network or the
#: tokenizer cannot load), so the run stops with the one line (exit 2) instead of recording each video as failed
RUN_LEVEL_ERRORS = (WeightsError, CheckpointError)


def _fail(record: VideoRecord, exc: Exception) -> None:
    """Mark the video failed with a one-line message (a model or metric error must not lose the other videos)."""
    if isinstance(exc, RUN_LEVEL_ERRORS):
        raise exc
    if isinstance(exc, BenchError):
        record.status, record.error = "failed", f"{record.path or record.video}: {exc}"
        return
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    record.status, record.error = "failed", f"{record.path or record.video}: {type(exc).__name__}: {msg}"


def run(cfg: dict[str, Any]) -> dict[str, Any]:
    """Run one evaluation from a composed config dict (see conf/config.yaml)."""
    return Runner(cfg).run()
