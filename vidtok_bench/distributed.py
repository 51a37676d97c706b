"""Many processes, one result: ``torchrun ... vidtok-bench run ...`` and ``run shard=I/N``.

A run split over N parts gives every part a deterministic subset of the videos
(:func:`shard_videos`: balanced by frame count, no video twice, none lost; a part may get none).
Part ``I`` of ``N`` evaluates its subset exactly as a single run would (same stages, same per-clip
records, set-metric state that merges exactly) into ``OUT/shard-I-of-N/``; the parts are then
combined by :func:`vidtok_bench.merge.combine` in dataset order, so every per-clip and per-video
value equals the single-process run's and FVD uses the same features in the same order.

* ``vidtok-bench run shard=I/N``: one part, on its own (job arrays, preemptible machines);
  ``vidtok-bench merge`` combines the parts' directories.
* under ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set): rank ``r`` is part ``r`` of
  ``WORLD_SIZE``, on ``cuda:LOCAL_RANK`` (NCCL) or the CPU (gloo). Ranks wait for each other
  through the rendezvous store with heartbeats (a dead or failed rank ends the job with a message
  naming it, never a hang), then rank 0 gathers the parts over gloo and writes the one result.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from .errors import BenchError, ConfigError, Terminated

#: how often a rank tells the others it is alive, at most
HEARTBEAT_S = 5.0
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class DistributedError(BenchError):
    """A rank failed, died or stopped answering; finished work is kept for a rerun."""


# ----------------------------------------------------------------------------- environment
@dataclass(frozen=True)
class DistEnv:
    """What the launcher (torchrun, or srun with the same variables) says about this process."""

    rank: int
    world: int
    local_rank: int

    @classmethod
    def from_environ(cls, environ: Any = None) -> "DistEnv | None":
        """None outside a launcher (no ``RANK``/``WORLD_SIZE``)."""
        env = os.environ if environ is None else environ
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return None
        try:
            rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
            local = int(env.get("LOCAL_RANK", rank))
        except ValueError:
            raise ConfigError(f"RANK={env['RANK']!r} WORLD_SIZE={env['WORLD_SIZE']!r} must be integers") from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise ConfigError(f"RANK={rank} WORLD_SIZE={world} LOCAL_RANK={local} are not a valid rank")
        return cls(rank, world, local)


def parse_shard(value: Any) -> tuple[int, int] | None:
    """``"I/N"`` (0 <= I < N) -> (I, N); None/null -> None."""
    if value is None:
        return None
    m = _SHARD.match(str(value))
    if not m or not 0 <= int(m.group(1)) < int(m.group(2)):
        raise ConfigError(f"shard={value!r} must be I/N with 0 <= I < N, e.g. shard=0/4 ... shard=3/4")
    return int(m.group(1)), int(m.group(2))


def shard_dirname(index: int, count: int) -> str:
    """The directory of part ``index`` of ``count`` inside the run's output directory."""
    return f"shard-{index}-of-{count}"


# ----------------------------------------------------------------------------- splitting
def frame_count(dataset: Any, video: Any) -> int | None:
    """A video's frame count from cheap metadata: the dataset's ``frame_count(video)`` when it has one,
    the reference's metadata (``num_frames``, ``frames``, ``frame_range``), else the container header."""
    fn = getattr(dataset, "frame_count", None)
    if callable(fn):
        return fn(video)
    meta = video.meta or {}
    for key in ("num_frames", "frames"):
        if isinstance(meta.get(key), int):
            return meta[key]
    if isinstance(meta.get("frame_range"), (tuple, list)) and len(meta["frame_range"]) == 2:
        start, end = meta["frame_range"]
        if isinstance(start, int) and isinstance(end, int):
            return end - start
    if video.path and os.path.isfile(video.path):
        from .video.decode import open_video

        try:
            return open_video(video.path).num_frames
        except Exception:  # an unreadable file fails when it is evaluated, not while splitting
            return None
    return None


def frame_counts(dataset: Any, videos: Sequence[Any]) -> list[int]:
    """Balancing weights: frame counts where every video has one, else equal weights (deterministic either way)."""
    counts = [frame_count(dataset, v) for v in videos]
    if any(c is None for c in counts):
        return [1] * len(videos)
    return [max(1, int(c)) for c in counts]  # type: ignore[arg-type]


def shard_videos(videos: Sequence[Any], frame_counts: Sequence[int], rank: int, world: int) -> list[Any]:
    """Videos of part ``rank`` of ``world``: longest first, each to the least-loaded part (lowest index on
    ties), so parts get about equal frames; every video lands in exactly one part; order kept."""
    if len(videos) != len(frame_counts):
        raise ValueError(f"{len(videos)} videos but {len(frame_counts)} frame counts")
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is not in 0..{world - 1}")
    load = [0] * world
    owner = [0] * len(videos)
    for i in sorted(range(len(videos)), key=lambda i: (-frame_counts[i], i)):
        r = min(range(world), key=lambda r: (load[r], r))
        owner[i] = r
        load[r] += frame_counts[i]
    return [v for v, r in zip(videos, owner) if r == rank]


def part_videos(dataset: Any, videos: Sequence[Any], shard: tuple[int, int] | None) -> list[Any]:
    """The videos one part evaluates (all of them when the run is not split)."""
    if shard is None:
        return list(videos)
    return shard_videos(videos, frame_counts(dataset, videos), *shard)


# ----------------------------------------------------------------------------- waiting on ranks
class RankWatch:
    """Liveness through the rendezvous store: each rank beats (a counter) from a thread, marks itself
    done or failed; :meth:`wait_all` returns when every rank is done and raises DistributedError when
    one failed or its counter stood still for ``timeout`` seconds. Counters, not clocks: nodes' clocks
    may differ."""

    def __init__(self, store: Any, rank: int, world: int, timeout: float, prefix: str = "vidtok-bench",
                 interval: float | None = None):
        self.store, self.rank, self.world, self.timeout = store, rank, world, float(timeout)
        self.prefix = prefix
        self.interval = interval if interval is not None else max(0.05, min(HEARTBEAT_S, self.timeout / 6))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _key(self, what: str, rank: int) -> str:
        return f"{self.prefix}/{what}/{rank}"

    def start(self) -> "RankWatch":
        self.store.add(self._key("beat", self.rank), 1)

        def beat() -> None:
            while not self._stop.wait(self.interval):
                try:
                    self.store.add(self._key("beat", self.rank), 1)
                except Exception:  # the store is gone: wait_all (or the launcher) reports it
                    return

        self._thread = threading.Thread(target=beat, daemon=True, name="vidtok-bench-heartbeat")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval + 1)

    def done(self) -> None:
        self.store.set(self._key("done", self.rank), "1")

    def failed(self, message: str) -> None:
        try:
            self.store.set(self._key("failed", self.rank), message[:2000])
        except Exception:
            pass

    def wait_all(self, poll: float = 0.2, clock: Callable[[], float] = time.monotonic) -> None:
        seen: dict[int, tuple[int, float]] = {}
        while True:
            pending = []
            try:
                for r in range(self.world):
                    if self.store.check([self._key("failed", r)]):
                        msg = self.store.get(self._key("failed", r)).decode(errors="replace")
                        raise DistributedError(f"rank {r} failed: {msg}")
                    if not self.store.check([self._key("done", r)]):
                        pending.append(r)
                now = clock()
                for r in pending:
                    count = int(self.store.add(self._key("beat", r), 0))
                    if r not in seen or seen[r][0] != count:
                        seen[r] = (count, now)
                    elif now - seen[r][1] > self.timeout:
                        raise DistributedError(f"rank {r} stopped answering (no heartbeat for {self.timeout:.0f} s): "
                                               "it died or hangs")
            except DistributedError:
                raise
            except Exception as exc:  # the store itself went away (its host died)
                raise DistributedError(f"lost the rendezvous store ({type(exc).__name__}: {exc}); "
                                       "rank 0 or the launcher stopped") from None
            if not pending:
                return
            time.sleep(poll)


# ----------------------------------------------------------------------------- process group
def backend_for(device: Any) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init(env: DistEnv, device: Any, timeout_s: float):
    """Join the default process group (NCCL on CUDA, gloo on CPU) and return a gloo group for objects."""
    import torch.distributed as dist

    timeout = _dt.timedelta(seconds=timeout_s)
    kwargs: dict[str, Any] = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend_for(device), timeout=timeout, rank=env.rank, world_size=env.world, **kwargs)
    return dist.new_group(backend="gloo", timeout=timeout) if device.type == "cuda" else dist.group.WORLD


def destroy() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # peers already gone: nothing left to tidy
            pass


def gather_objects(obj: Any, group: Any = None, dst: int = 0) -> list[Any] | None:
    """Every rank's ``obj`` on rank ``dst`` (rank order), None elsewhere."""
    import torch.distributed as dist

    out = [None] * dist.get_world_size(group) if dist.get_rank() == dst else None
    dist.gather_object(obj, out, dst=dst, group=group)
    return out


def _from_rank0(value: Any, group: Any) -> Any:
    """Rank 0's ``value``, on every rank."""
    import torch.distributed as dist

    obj = [value]
    dist.broadcast_object_list(obj, src=0, group=group)
    return obj[0]


def _check_whole_dir(runner: Any) -> tuple[Any, ConfigError | None]:
    """(the finished result kept in the run's output directory, or None; the refusal of another run's work there)."""
    try:
        return runner.check_whole_dir(), None
    except ConfigError as exc:
        return None, exc


def _store_prefix() -> str:
    """Keys of this attempt only: torchrun restarts reuse the store."""
    return f"vidtok-bench/{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"


# ----------------------------------------------------------------------------- the run
def run_distributed(plan: Any, env: DistEnv):
    """Rank ``env.rank``'s share of one evaluation (``plan``: a RunPlan); returns the combined Result on
    rank 0, None elsewhere."""
    import torch
    import torch.distributed as dist

    from .merge import combine, load_part, write_run
    from .runner import Runner

    if plan.shard is not None:
        raise ConfigError(f"shard={plan.cfg.get('shard')} cannot be combined with torchrun: each rank is already a shard")
    device = plan.device
    if device.type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK={env.local_rank} but this node has {torch.cuda.device_count()} GPU(s)")
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    plan = replace(plan, device=device, shard=(env.rank, env.world), progress=plan.progress and env.rank == 0)
    started = time.perf_counter()
    group = init(env, device, plan.dist_timeout_s)
    watch = RankWatch(dist.distributed_c10d._get_default_store(), env.rank, env.world, plan.dist_timeout_s,
                      prefix=_store_prefix()).start()
    where = "its output directory"
    try:
        runner = Runner(plan)
        where = str(runner.store.dir)
        # OUT itself, before any rank works (rank 0 looks; other nodes may not see OUT): this run finished before, by
        # any number of ranks or one process, is kept; another configuration's work there is refused
        kept, refusal = _check_whole_dir(runner) if env.rank == 0 else (None, None)
        verdict = _from_rank0("refused" if refusal else "kept" if kept is not None else "go", group)
        if verdict == "refused":
            if refusal is not None:
                raise refusal
            return None  # rank 0 says why, once
        if verdict == "kept":
            if kept is not None:
                from .run_cli import already_complete

                already_complete(runner.output_dir)
            return kept
        runner.run_result()
        part = load_part(runner.store.dir)
        part.host = socket.gethostname()
        watch.done()
        watch.wait_all()
        parts = gather_objects(part, group)
        if env.rank != 0:
            return None
        assert parts is not None
        merged = combine(parts, mode="torchrun", backend=backend_for(device), wall_s=time.perf_counter() - started)
        write_run(runner.output_dir, merged, overwrite=plan.overwrite)
        return merged.result
    except KeyboardInterrupt as exc:  # SIGTERM (errors.Terminated): torchrun stops the others when one rank dies
        what = "terminated by the launcher (SIGTERM: the job was cancelled or another rank failed; see the launcher's log)" \
            if isinstance(exc, Terminated) else "interrupted"
        print(f"vidtok-bench: rank {env.rank}: {what}; finished videos are kept in {where}; rerun the same command "
              "to resume", file=sys.stderr)
        raise
    except DistributedError as exc:
        raise DistributedError(f"rank {env.rank}: {exc}; finished videos are kept in {where}; rerun the same "
                               "command to resume") from None
    except BaseException as exc:
        watch.failed(f"{type(exc).__name__}: {exc}" if not isinstance(exc, BenchError) else str(exc))
        raise
    finally:
        watch.stop()
        destroy()
