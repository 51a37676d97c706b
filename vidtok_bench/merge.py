"""``vidtok-bench merge SHARD_DIRS... -o OUT``: one result from the parts of a split run.

A part (``run shard=I/N``, or torchrun rank I) leaves ``OUT/shard-I-of-N/`` with its per-clip
records, its set metrics' state (``state/<metric>.pt``, e.g. FVD features) and a results.json that
says which videos it evaluated. :func:`combine` takes the parts in dataset order and recomputes
every value from those records and that state, exactly as a single run does (no averages of
per-part values), so the merged result equals the single run's; torchrun ranks use the same
function on the parts rank 0 gathered. Parts from different configurations or fingerprints, and
incomplete sets, are refused with a message naming what differs or is missing.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from pydantic import ValidationError

from .config import RUNTIME_OVERRIDE_KEYS
from .environment import code_differences
from .errors import BenchError
from .hashing import flatten
from .results import (MANIFEST_FILE, PER_CLIP_FILE, RESULTS_FILE, RUN_META_FILE, STATE_DIR, DistributedBlock, Memory, PartStats, Result,
                      RunMeta, VideoRecord, load_result, read_records)

if TYPE_CHECKING:
    from .stages.store import RunStore

_SHARD_DIR = re.compile(r"^shard-(\d+)-of-(\d+)$")
#: configuration keys that may differ between the parts of one run (where and how each part ran; a shard
#: rerun with overwrite=true, or decoded by more workers, computes the same values)
RUN_LOCAL_KEYS = (*RUNTIME_OVERRIDE_KEYS, "device")


class MergeError(BenchError):
    """Parts that do not make one run."""


@dataclass
class Part:
    """One part of a split run: its result, its videos' records (dataset order) and set-metric state."""

    result: Result
    records: list[VideoRecord]
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""
    host: str | None = None
    #: the fingerprint its run_meta.json holds (what a rerun of the same configuration compares)
    meta_fingerprint: dict[str, str] | None = None
    #: what that fingerprint hashes (run_meta.json's settings), to name what differs when -o holds another run
    meta_settings: dict[str, Any] | None = None

    @property
    def index(self) -> int:
        assert self.result.shard is not None
        return self.result.shard.index


def load_part(path: str | Path) -> Part:
    """A shard directory as a :class:`Part` (MergeError when it is not a finished shard)."""
    import torch

    d = Path(path)
    if not (d / RESULTS_FILE).is_file():
        what = "unfinished (per_clip.jsonl but no results.json)" if (d / PER_CLIP_FILE).is_file() else "not a run directory"
        raise MergeError(f"{d}: {what}; rerun that shard (the same command resumes it)")
    result = load_result(d)
    if result.shard is None:
        raise MergeError(f"{d}: a whole run, not a shard (its results.json has no 'shard'); shards come from run shard=I/N")
    # the log holds every attempt of a video (a resumed run appends): the last one counts
    latest = {r.video: r for r in read_records(d / PER_CLIP_FILE)}
    lost = [v for v in result.shard.videos if v not in latest]
    if lost:
        raise MergeError(f"{d}: per_clip.jsonl lacks {len(lost)} of the shard's videos (e.g. {lost[0]}); rerun that shard")
    states = {}
    for name, m in result.metrics.items():
        f = d / STATE_DIR / f"{name}.pt"
        if m.info.kind != "set":
            continue
        if f.is_file():
            states[name] = torch.load(f, weights_only=True)
        elif m.clips:
            raise MergeError(f"{d}: {STATE_DIR}/{name}.pt is missing, but the shard scored {m.clips} clips with {name}")
    meta = _run_meta(d)
    return Part(result, [latest[v] for v in result.shard.videos], states, source=str(d),
                meta_fingerprint=meta and {k: v for k, v in meta.fingerprint.model_dump().items() if v is not None},
                meta_settings=meta and meta.settings)


def _run_meta(d: Path) -> RunMeta | None:
    """A shard's run_meta.json (None without one); a damaged file is refused by name, since the merged
    directory's run_meta.json is written from it."""
    f = d / RUN_META_FILE
    if not f.is_file():
        return None
    try:
        meta = RunMeta.model_validate_json(f.read_bytes())
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(map(str, err["loc"]))
        raise MergeError(f"{f}: not a valid {RUN_META_FILE} ({where + ': ' if where else ''}{err['msg']}); "
                         "rerun that shard with overwrite=true") from None
    return meta


def expand(paths: Sequence[str | Path]) -> list[Path]:
    """Shard directories: each path is one, or a run directory whose shard-I-of-N subdirectories are taken."""
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise MergeError(f"{p}: no such directory")
        subs = sorted((s for s in p.iterdir() if s.is_dir() and _SHARD_DIR.match(s.name)),
                      key=lambda s: tuple(int(x) for x in _SHARD_DIR.match(s.name).groups()))  # type: ignore[union-attr]
        out.extend([p] if _SHARD_DIR.match(p.name) or not subs else subs)
    return out


def _run_local(key: str) -> bool:
    """Whether a flattened config key (``dataset.workers``) may differ between the parts of one run."""
    return key.split(".")[0] in RUN_LOCAL_KEYS or key in RUN_LOCAL_KEYS


def check_parts(parts: Sequence[Part], unfinished: Sequence[str] = ()) -> None:
    """MergeError unless ``parts`` are every shard of one run, each once, covering every video once."""
    if not parts:
        raise MergeError("no shards to merge")
    first = parts[0]
    assert first.result.shard is not None
    count = first.result.shard.count
    base = {k: v for k, v in flatten(first.result.config).items() if not _run_local(k)}
    seen: dict[int, str] = {}
    for p in parts:
        s = p.result.shard
        assert s is not None
        if s.count != count:
            raise MergeError(f"{p.source} is shard {s.index}/{s.count} but {first.source} is {first.result.shard.index}/"
                             f"{count}: shards of different splits")
        cfg = {k: v for k, v in flatten(p.result.config).items() if not _run_local(k)}
        differ = sorted(k for k in set(cfg) | set(base) if cfg.get(k) != base.get(k))
        if differ:
            shown = ", ".join(f"{k}={cfg.get(k)!r} vs {base.get(k)!r}" for k in differ[:4])
            raise MergeError(f"{p.source} and {first.source} come from different configurations: {shown}")
        # (fingerprint.manifest is each shard's own frames; the merged one is rebuilt from the records)
        which = [k for k in ("data", "config") if getattr(p.result.fingerprint, k) != getattr(first.result.fingerprint, k)]
        if which:
            raise MergeError(f"{p.source} and {first.source} have different {' and '.join(which)} fingerprints "
                             "(other videos, weights or code): not shards of one run")
        if s.dataset_videos != first.result.shard.dataset_videos:
            raise MergeError(f"{p.source} and {first.source} list different videos for the run")
        if s.index in seen:
            raise MergeError(f"shard {s.index}/{count} given twice: {seen[s.index]} and {p.source}")
        seen[s.index] = p.source
    missing = [i for i in range(count) if i not in seen]
    if missing:
        more = f"; unfinished: {', '.join(unfinished)}" if unfinished else ""
        raise MergeError(f"incomplete: missing shard(s) {', '.join(f'{i}/{count}' for i in missing)} of {count}{more}")
    owner: dict[str, int] = {}
    for p in parts:
        for v in p.result.shard.videos:  # type: ignore[union-attr]
            if v in owner:
                raise MergeError(f"video {v} is in shard {owner[v]} and shard {p.index}")
            owner[v] = p.index
    lost = [v for v in first.result.shard.dataset_videos if v not in owner]
    if lost:
        raise MergeError(f"no shard evaluated {len(lost)} video(s), e.g. {lost[0]}")


@dataclass
class Merged:
    result: Result
    records: list[VideoRecord]
    scoring: Any  # ScoringStage holding the merged set-metric state
    meta_fingerprint: dict[str, str]
    meta_settings: dict[str, Any] | None = None


def _sum_known(values: list[float | None]) -> float | None:
    """The sum, or None when a part did not know its value (a part that scored no clip counts 0)."""
    return None if any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]


def _same(values: list[float | None], scale: float = 1.0) -> float | None:
    """The one value every part shares (the same device model's peak), else None: an MFU over mixed devices means nothing."""
    return values[0] * scale if values and values[0] and all(v == values[0] for v in values) else None


def combine(parts: Sequence[Part], mode: str = "merge", backend: str | None = None, wall_s: float | None = None) -> Merged:
    """One result from every part of a run, as the single run computes it (records in dataset order)."""
    from .config import plan_run
    from .stages.assemble import make_throughput, record_blocks, run_status
    from .stages.scoring import ScoringStage

    check_parts(parts)
    parts = sorted(parts, key=lambda p: p.index)
    first = parts[0].result
    order = first.shard.dataset_videos  # type: ignore[union-attr]
    # every metric recomputed on the CPU from the records and the state (no network runs here)
    plan = plan_run({**first.config, "device": "cpu", "shard": None})
    scoring = ScoringStage.from_plan(plan, "cpu")
    for name, m in scoring.set_metrics.items():
        for p in parts:
            if name in p.states:
                try:
                    m.merge_state_dict(p.states[name])
                except ValueError as exc:
                    raise MergeError(f"{p.source}: {exc}") from None
    for name in scoring.seconds:  # each metric's time: the parts' own, then the final computation here
        scoring.seconds[name] = sum((p.result.metrics[name].time_s or 0.0) for p in parts if name in p.result.metrics)
    by_video = {r.video: r for p in parts for r in p.records}
    records = [by_video[v] for v in order if v in by_video]
    blocks = record_blocks(scoring, records, resumed=sum(p.result.videos.resumed for p in parts))
    thr = [p.result.throughput for p in parts]
    throughput = make_throughput(sum(t.encode_s for t in thr), sum(t.decode_s for t in thr), sum(t.clips for t in thr),
                                 sum(t.frames for t in thr),
                                 note=f"summed over {len(parts)} parts (rates per device; distributed.total_frames_per_s "
                                      f"is the aggregate); {thr[0].note}",
                                 flops=(_sum_known([t.encode_flops for t in thr]), _sum_known([t.decode_flops for t in thr])),
                                 peak_flops=_same([t.peak_tflops_per_s for t in thr], scale=1e12))
    peak = max(parts, key=lambda p: p.result.memory.peak_bytes).result.memory
    kinds = {p.result.memory.kind for p in parts}
    memory = Memory(peak_bytes=peak.peak_bytes, kind=peak.kind if len(kinds) == 1 else "mixed: " + ", ".join(sorted(kinds)))
    stats = [PartStats(index=p.index, host=p.host, device=p.result.run.device, videos=len(p.records),
                       duration_s=p.result.run.duration_s, throughput=p.result.throughput, memory=p.result.memory)
             for p in parts]
    rates = [t.frames_per_s for t in thr if t.frames_per_s]
    dist = DistributedBlock(mode=mode, count=len(parts), backend=backend, parts=stats,  # type: ignore[arg-type]
                            total_frames_per_s=sum(rates) if rates else None,
                            total_peak_bytes=sum(p.result.memory.peak_bytes for p in parts), wall_s=wall_s)
    run = first.run.model_copy(update={"status": run_status(records), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(),
                                       "duration_s": wall_s if wall_s is not None else max(p.result.run.duration_s for p in parts)})
    config = {**first.config, "shard": None}
    environment = dict(first.environment)
    if differ := code_differences({str(p.index): p.result.environment for p in parts}):
        environment["parts_differ"] = differ  # which code computed which part, when they were not all the same
        print(f"vidtok-bench: warning: the parts ran different code ({', '.join(differ)}); each part's value is in "
              "results.json environment.parts_differ", file=sys.stderr)
    result = first.model_copy(update={**blocks, "throughput": throughput, "memory": memory, "run": run, "config": config,
                                      "environment": environment, "shard": None, "distributed": dist})
    meta_fp = parts[0].meta_fingerprint or {"data": first.fingerprint.data, "config": first.fingerprint.config}
    return Merged(Result.model_validate(result.dump()), records, scoring, meta_fp, parts[0].meta_settings)


def write_run(out_dir: str | Path, merged: Merged, overwrite: bool = False) -> Path:
    """Write a combined run as a finished single run's directory (results.json, per_video.csv,
    per_clip.jsonl, frames manifest, set-metric state): rerunning the same configuration there
    evaluates nothing. Another configuration's work there is refused, as a run refuses it, unless
    ``overwrite`` (torchrun's overwrite=true)."""
    from types import SimpleNamespace

    from .data import Preprocess
    from .stages.manifest import ManifestStage
    from .stages.store import RunStore

    result = merged.result
    store = RunStore(Path(out_dir), option="-o ")
    store.lock()
    try:
        if not overwrite:
            _refuse_other_run(store, merged.meta_fingerprint, merged.meta_settings)
        store.open(merged.meta_fingerprint, resume=False, overwrite=overwrite or store.holds(merged.meta_fingerprint),
                   settings=merged.meta_settings)
        for r in merged.records:
            store.append(r)
        merged.scoring.save_state(store.state_dir)
        # the frames manifest of the whole run from the shards' per-video entries, as a single run writes it
        ds = result.dataset
        frames = ManifestStage(SimpleNamespace(preprocess=Preprocess(**ds.preprocess), name=ds.name,  # type: ignore[arg-type]
                                               plugin_name=ds.plugin, root=None, info=ds.model_dump))
        frames.resume([r for r in merged.records if r.status == "ok"])
        result.fingerprint.manifest = frames.write(store.dir / MANIFEST_FILE, [r.video for r in merged.records])
        result.config["output_dir"] = str(out_dir)
        store.write(result, merged.records, merged.scoring.frame_metrics)
    finally:
        store.unlock()
    return store.dir


def _refuse_other_run(store: RunStore, fingerprint: dict[str, str], settings: dict[str, Any] | None) -> None:
    """MergeError when OUT holds another run: merge replaces only its own earlier result (the store's refusal
    suggests overwrite=true, an option of `run` that merge does not have)."""
    other = store.other_run(fingerprint, settings=settings)
    if other:  # (not "remove OUT": merged in place, OUT also holds the shards)
        raise MergeError(f"-o {store.dir} holds {other}; choose another -o directory, or delete that run's "
                         f"{RESULTS_FILE} and {PER_CLIP_FILE} there first")


# ----------------------------------------------------------------------------- CLI
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge", help="combine the shards of a split run (run shard=I/N) into one result",
                       description="Combine shard directories (OUT/shard-I-of-N from `run shard=I/N`, or a run "
                                   "directory holding them) into one result identical to a single run's.")
    p.add_argument("dirs", nargs="+", metavar="DIR", help="shard directories, or run directories holding shard-I-of-N/")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="directory for the merged result")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from .run_cli import finish

    parts, unfinished = [], []
    for d in expand(args.dirs):
        try:
            parts.append(load_part(d))
        except MergeError as exc:
            if "unfinished" not in str(exc):
                raise
            unfinished.append(str(d))
    if unfinished and not parts:
        raise MergeError(f"no finished shard; unfinished: {', '.join(unfinished)}")
    check_parts(parts, unfinished)
    if unfinished:
        raise MergeError(f"unfinished shard directories: {', '.join(unfinished)}; rerun them (the same command resumes)")
    merged = combine(parts)
    write_run(args.output, merged)
    return finish(merged.result)  # the exit status of `run`: 3 when videos failed, 4 when nothing was scored
