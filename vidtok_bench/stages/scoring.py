"""The scoring stage: the protocol's preparation once, then every metric on the prepared clips.

Frame and clip metrics write their statistics into per-clip records (which merge across shards
by concatenation); set metrics accumulate state that merges exactly (see SetMetric); latent
metrics see each batch's latent. The time spent in each metric is recorded with its result."""
from __future__ import annotations

import math
import queue
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from ..atomic import atomic_output
from ..data import Clip
from ..metrics.base import FrameMetric, LatentMetric, Metric, SetMetric
from ..results import ClipRecord, MetricResult, VideoRecord
from ..scoring import Scoring
from .model import ModelOutput


class ScoringStage:
    def __init__(self, metrics: dict[str, Metric], scoring: Scoring, tokenizer: Any = None):
        self.metrics, self.scoring, self.tokenizer = metrics, scoring, tokenizer
        self.frame_metrics = {n: m for n, m in metrics.items() if isinstance(m, FrameMetric)}
        self.set_metrics = {n: m for n, m in metrics.items() if isinstance(m, SetMetric)}
        self.latent_metrics = {n: m for n, m in metrics.items() if isinstance(m, LatentMetric)}
        #: seconds spent in each metric (scoring and final computation) in this process
        self.seconds: dict[str, float] = {n: 0.0 for n in metrics}
        for m in metrics.values():
            m.bind(tokenizer, metrics)

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        device = self.metrics[name].device
        if device.type == "cuda":  # queued kernels belong to the metric that queued them (this thread's stream)
            torch.cuda.current_stream(device).synchronize()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if device.type == "cuda":
                torch.cuda.current_stream(device).synchronize()
            self.seconds[name] += time.perf_counter() - t0

    @classmethod
    def from_plan(cls, plan: Any, device: Any, tokenizer: Any = None) -> "ScoringStage":
        """The run's metrics (options from the protocol) on ``device``, under the protocol's scoring."""
        from ..registry import METRICS

        metrics = {n: METRICS.build({"plugin": n, **opts}, device=device) for n, opts in plan.metrics.items()}
        return cls(metrics, Scoring.from_protocol(plan.protocol), tokenizer)

    def __call__(self, clips: list[Clip], video: torch.Tensor, out: ModelOutput) -> list[ClipRecord]:
        """Score one batch: ``video`` the clips (B,3,T,H,W) as given to the model, ``out`` its output."""
        recon, finite = self.scoring.prepare(out.recon)
        real = video.to(recon.device)
        t, n = video.shape[2], len(clips)
        scored = [self.scoring.scored_frames(t, c.valid) for c in clips]
        stats: list[dict[str, list[float]]] = [{} for _ in clips]
        ids = [f"{c.video_id}#{c.index}" for c in clips]
        for name, m in self.latent_metrics.items():
            with self._timed(name):
                m.update_latent(out.latent, self.tokenizer, out.pixels, ids)
        for length, idx in self.scoring.groups(scored):
            r, f = real[idx, :, :length], recon[idx, :, :length]
            for name, m in self.frame_metrics.items():
                with self._timed(name):
                    for i, values in zip(idx, m.clip_stats(r, f)):
                        stats[i][name] = values
            group_stats = {name: [stats[i][name] for i in idx] for name in self.frame_metrics}
            for name, m in self.set_metrics.items():
                if name in self.latent_metrics:
                    continue
                with self._timed(name):
                    group_ids = [ids[i] for i in idx]
                    m.note_sources({ids[i]: clips[i].source_indices for i in idx})
                    m.observe_frame_stats(group_stats, group_ids)
                    m.update(r, f, group_ids)
        return [ClipRecord(clip=c.index, start=c.start, frames=scored[i], valid=c.valid, tail_repeated=c.tail_padded,
                           tokenizer_padded=out.padded, bits=out.bits / n, pixels=out.pixels // n,
                           encode_s=out.encode_s / n, decode_s=out.decode_s / n, nonfinite=not bool(finite[i]),
                           stats=stats[i])
                for i, c in enumerate(clips)]

    def discard(self, record: VideoRecord) -> None:
        """Forget a failed video's clips in the set metrics, so it counts nowhere."""
        for m in self.set_metrics.values():
            m.discard([f"{record.video}#{c.clip}" for c in record.clips])

    # ----------------------------------------------------------------- state (resume, shards)
    def save_state(self, state_dir: Path) -> None:
        for name, m in self.set_metrics.items():
            state = m.state_dict()
            if state:
                state_dir.mkdir(exist_ok=True)
                with atomic_output(state_dir / f"{name}.pt") as tmp:
                    torch.save(state, tmp)

    def load_state(self, state_dir: Path, finished: Sequence[str] = ()) -> set[str]:
        """Load the set metrics' saved state; returns the ``finished`` videos some metric's state lacks. A video's
        record is appended before the state is saved, so a run stopped (or out of disk) between the two has a
        finished video without its features: the caller recomputes it rather than leave it out of the value."""
        lacking: set[str] = set()
        for name, m in self.set_metrics.items():
            f = state_dir / f"{name}.pt"
            if f.exists():
                m.load_state_dict(torch.load(f, weights_only=True))
            held = m.state_videos()
            if held is not None:
                lacking |= set(finished) - held
        return lacking

    # ----------------------------------------------------------------- summary
    def summarise(self, videos: Sequence[VideoRecord], order: Sequence[str]) -> dict[str, MetricResult]:
        ok = [v for v in videos if v.status == "ok"]
        n_clips = sum(len(v.clips) for v in ok)
        out: dict[str, MetricResult] = {}
        for name, m in self.metrics.items():
            common: dict[str, Any] = {"info": m.info, "spec": m.spec()}
            if isinstance(m, FrameMetric):
                per_video = [[x for c in v.clips for x in c.stats.get(name, [])] for v in ok]
                per_video = [s for s in per_video if s]
                values = [x for s in per_video for x in s]
                value = m.reduce_run(values, [m.reduce_video(s) for s in per_video]) if values else None
                covered = [c for v in ok for c in v.clips if c.stats.get(name)]  # a 1-frame clip has no frame pair
                out[name] = MetricResult(value=value, frames=sum(c.frames for c in covered), clips=len(covered),
                                         videos=len(per_video), **common)
            else:
                with self._timed(name):
                    res = dict(m.compute(order)) if n_clips else {"value": None, "clips": 0}
                value = res.pop("value", None)
                value = None if value is None or not math.isfinite(value) else float(value)
                out[name] = MetricResult(value=value, clips=int(res.pop("clips", 0)), warning=res.pop("warning", None),
                                         details=res.pop("details", {}) | res, **common)
            out[name].time_s = self.seconds[name]
        return out


def _cuda_tensors(obj: Any, depth: int = 0) -> Iterator[torch.Tensor]:
    """CUDA tensors in a job (tuples, lists, dicts and dataclass-like objects such as ModelOutput, a few levels deep)."""
    if isinstance(obj, torch.Tensor):
        if obj.is_cuda:
            yield obj
    elif depth < 3 and isinstance(obj, (tuple, list)):
        for x in obj:
            yield from _cuda_tensors(x, depth + 1)
    elif depth < 3 and isinstance(obj, dict):
        for x in obj.values():
            yield from _cuda_tensors(x, depth + 1)
    elif depth < 3 and hasattr(obj, "__dataclass_fields__"):
        for name in obj.__dataclass_fields__:
            yield from _cuda_tensors(getattr(obj, name), depth + 1)


class ScoringWorker:
    """Runs ``fn(*job)`` for each submitted job, in submission order, in one background thread, so
    scoring batch i overlaps the model's work on batch i+1 (torch ops release the GIL). Disabled, it
    runs each job at once in the caller's thread. At most ``depth`` jobs wait while one runs (the
    model blocks beyond that), so at most ``depth + 1`` modelled batches are held.

    ``fn`` handles its own (per-video) errors; anything that escapes it is re-raised in the caller's
    thread at the next ``submit``/``drain``, and later jobs are skipped."""

    def __init__(self, fn: Callable[..., None], enabled: bool = True, depth: int = 1, device: Any = None):
        self.fn, self.enabled = fn, enabled
        # CUDA: the worker scores on its own stream, after an event recorded on the submitting stream
        # (the model's output and the ground truth are complete), and marks the job's tensors as used
        # there so the caching allocator does not hand their memory to the model's next batch too early
        dev = torch.device(device) if device is not None else None
        self._cuda = dev if dev is not None and dev.type == "cuda" and enabled else None
        self._stream = torch.cuda.Stream(dev) if self._cuda is not None else None
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize=max(1, depth))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()

    def submit(self, *job: Any) -> None:
        self._raise()
        if not self.enabled:
            self.fn(*job)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, daemon=True, name="vidtok-bench-scoring")
            self._thread.start()
        ready = torch.cuda.current_stream(self._cuda).record_event() if self._cuda is not None else None
        self._queue.put((ready, job))

    def drain(self) -> None:
        """Wait until every submitted job has run."""
        if self._thread is not None:
            self._queue.join()
        self._raise()

    def close(self) -> None:
        """Stop the thread: jobs not yet started are skipped (called after ``drain`` on a normal end; on an
        interrupt the batches in flight belong to a video not yet stored, which a resumed run redoes).

        Waits for the job already running (one batch): a thread left inside a torch op when the interpreter
        exits makes the C++ runtime abort (exit 134, "terminate called without an active exception") instead
        of the 130/143 that schedulers read as interrupted."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            ready, job = job
            try:
                if self._error is None and not self._stop.is_set():
                    if self._stream is None:
                        self.fn(*job)
                    else:
                        with torch.cuda.stream(self._stream):
                            self._stream.wait_event(ready)
                            for t in _cuda_tensors(job):
                                t.record_stream(self._stream)
                            self.fn(*job)
            except BaseException as exc:  # a bug, not a metric's error (fn records those): the caller re-raises it
                self._error = exc
            finally:
                self._queue.task_done()
