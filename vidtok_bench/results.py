"""The results format, owned here and nowhere else: typed models that build, validate, write and load
``results.json``, ``per_video.csv`` and ``per_clip.jsonl``, plus the accessors every report uses.

A run directory holds::

    results.json       Result (this module's schema, version SCHEMA)
    per_video.csv      one row per video: PER_VIDEO_COLUMNS, then one column per frame/clip metric
    per_clip.jsonl     one VideoRecord per line (a video with its ClipRecords and manifest entry); used to resume
    frames_manifest.json  the exact source frames evaluated (vidtok_bench.manifest); its sha256 is fingerprint.manifest
    run_meta.json      RunMeta: the fingerprint of the run in progress (resume refuses a different one)
    state/<metric>.pt  set-metric state (e.g. FVD features) so an interrupted run resumes
    shard-I-of-N/      the same files for part I of N (``shard=I/N`` or torchrun rank I), merged into the above

``python -m vidtok_bench.results`` prints the JSON Schema; the copy shipped in the package
(``results.schema.json``) and the field list in ``docs/results.md`` are checked against it by tests.
Results of the previous version (``vidtok-bench/results/v1``) load through :func:`upgrade_v1`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .atomic import atomic_output
from .errors import BenchError

SCHEMA = "vidtok-bench/results/v2"
SCHEMA_V1 = "vidtok-bench/results/v1"
RESULTS_FILE = "results.json"
PER_VIDEO_FILE = "per_video.csv"
PER_CLIP_FILE = "per_clip.jsonl"
MANIFEST_FILE = "frames_manifest.json"
RUN_META_FILE = "run_meta.json"
STATE_DIR = "state"
#: per_video.csv columns before the metric columns
PER_VIDEO_COLUMNS = ("video", "path", "status", "error", "clips", "frames")

MetricKind = Literal["frame", "clip", "set"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """A block whose listed fields are required; plugin-specific extra keys are kept as they are."""

    model_config = ConfigDict(extra="allow")


# ----------------------------------------------------------------------------- metric facts
class MetricInfo(_Strict):
    """A metric's facts, declared once on the metric class and recorded with every value it produces."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(description="column header, e.g. 'PSNR'")
    unit: str | None = Field(None, description="unit of the value, e.g. 'dB'")
    higher_is_better: bool = Field(description="direction used by tables, compare, gate and plots")
    precision: int = Field(description="decimals shown in tables")
    tolerance: str = Field(description="default regression-gate tolerance: absolute ('0.05') or relative ('2%')")
    kind: MetricKind = Field(description="frame: one value per frame; clip: one per clip; set: one per run")
    reduction: str = Field(description="how the headline value is formed")


class MetricResult(_Strict):
    value: float | None = Field(description="headline value (null when nothing was scored)")
    info: MetricInfo
    spec: dict[str, Any] = Field(description="exact definition: variant, network, weights sha256, preprocessing")
    frames: int | None = Field(None, description="frames the value covers (frame metrics)")
    clips: int = Field(description="clips the value covers")
    videos: int | None = Field(None, description="videos the value covers")
    warning: str | None = None
    details: dict[str, Any] = Field(default_factory=dict, description="metric-specific extras (e.g. cache hits)")
    time_s: float | None = Field(None, description="seconds the run spent in this metric (scoring and final "
                                 "computation, synchronised on GPU; videos resumed from an earlier run not "
                                 "counted; a network pass two metrics share, as lpips and tlpips do, counts in the "
                                 "one scored first)")


# ----------------------------------------------------------------------------- result blocks
class TokenizerBlock(_Open):
    name: str
    plugin: str
    family: str = Field(description="curve a result belongs to in rate-distortion plots (declared by the plugin)")
    compression: list[int]
    causal: bool
    frame_rule: str
    spatial_multiple: int
    latent_channels: int | None
    codebook_size: int | None
    bits_per_element: float | None
    nominal_bits_per_pixel: float | None
    weights: dict[str, Any] | None
    config: dict[str, Any]


class DatasetBlock(_Open):
    name: str
    plugin: str
    preprocess: dict[str, Any]
    config: dict[str, Any]
    missing: list[str] = Field(default_factory=list, description="videos a named set lists but the root lacked "
                                                                  "(the run went on without them: allow_missing=true)")


class ProtocolBlock(_Open):
    name: str


class ScoringBlock(_Strict):
    """What the protocol does to reconstructions before every metric (applied once, by the runner)."""

    clamp: bool = Field(description="reconstructions clamped to [-1,1] before scoring")
    tail_frames: Literal["scored", "excluded"] = Field(description="frames that only repeat a clip's last frame")
    input_range: list[float] = Field(description="value range of the tensors every metric receives")
    nonfinite: str = Field(description="what happens to NaN/inf reconstruction values")


class Throughput(_Strict):
    encode_s: float
    decode_s: float
    clips: int
    frames: int
    encode_frames_per_s: float | None
    decode_frames_per_s: float | None
    frames_per_s: float | None
    clips_per_s: float | None
    note: str
    encode_flops: float | None = Field(None, description="FLOPs of every encode call (torch.utils.flop_counter on a meta-device "
                                                         "copy of the model; null where the tokenizer has none)")
    decode_flops: float | None = Field(None, description="FLOPs of every decode call, counted as encode_flops")
    encode_tflops_per_s: float | None = Field(None, description="encode_flops / encode_s / 1e12")
    decode_tflops_per_s: float | None = Field(None, description="decode_flops / decode_s / 1e12")
    tflops_per_s: float | None = Field(None, description="(encode_flops + decode_flops) / (encode_s + decode_s) / 1e12")
    peak_tflops_per_s: float | None = Field(None, description="the device's dense datasheet peak at the run's precision "
                                                              "(vidtok_bench.flops.PEAK_TFLOPS); null for CPUs and unlisted GPUs")
    mfu: float | None = Field(None, description="tflops_per_s / peak_tflops_per_s: the fraction of the device's peak reached")


class Memory(_Strict):
    peak_bytes: int
    kind: str


class FramesBlock(_Strict):
    evaluated: int = Field(description="frames scored by frame metrics")
    tokenizer_padded: int = Field(description="frames added to fit the tokenizer's frame rule (never scored)")
    tail_repeated: int = Field(description="frames repeating a clip's last frame to fill the last clip")
    tail_frames_scored: bool
    nonfinite_clips: list[str] = Field(description="'<video>#<clip>' whose reconstruction had NaN/inf values")


class FailedVideo(_Strict):
    video: str
    path: str | None
    error: str | None


class VideosBlock(_Strict):
    total: int
    ok: int
    failed: list[FailedVideo]
    resumed: int = Field(description="videos taken from an earlier interrupted run of the same configuration")


class RunBlock(_Strict):
    status: Literal["complete", "partial", "empty"] = Field(
        "complete", description="complete: every selected video evaluated; partial: some failed; empty: none scored")
    device: str
    precision: str
    batch_size: int
    seed: int
    sample_posterior: bool
    date: str
    duration_s: float
    preprocess_on: Literal["cpu", "device"] | None = Field(
        None, description="where the protocol's resize and crop ran: cpu (while decoding) or device (on uint8 frames, "
                          "on the run's device); null in older results (cpu)")
    workers: int | None = Field(None, description="videos decoded at once by the reader (never changes the values)")


class ShardBlock(_Strict):
    """The part of a run one shard evaluated (``run shard=I/N``, or one torchrun rank)."""

    index: int = Field(description="I of shard=I/N (0-based)")
    count: int = Field(description="N of shard=I/N")
    videos: list[str] = Field(description="the videos this shard evaluated, in dataset order")
    dataset_videos: list[str] = Field(description="every video of the whole run, in dataset order")


class PartStats(_Strict):
    """Throughput and memory of one part of a combined run (a torchrun rank or a merged shard)."""

    index: int
    host: str | None
    device: str
    videos: int
    duration_s: float
    throughput: Throughput
    memory: Memory


class DistributedBlock(_Strict):
    """How a result was combined from parts; its top-level throughput sums the parts' times and counts
    (rates per device) and its memory is the largest part's peak."""

    mode: Literal["torchrun", "merge"]
    count: int = Field(description="number of parts (ranks or shards)")
    backend: str | None = Field(description="torch.distributed backend (torchrun), null for merged shards")
    parts: list[PartStats]
    total_frames_per_s: float | None = Field(description="sum of the parts' model frames/s: the aggregate throughput")
    total_peak_bytes: int = Field(description="sum of the parts' peak memory")
    wall_s: float | None = Field(description="wall time of the whole torchrun job on rank 0 (null for merged shards)")


class Fingerprint(_Strict):
    data: str = Field(description="sha256 of dataset, preprocessing, protocol, videos and metric specs")
    config: str = Field(description="data plus the tokenizer's configuration, weights sha256 and precision")
    manifest: str | None = Field(None, description="sha256 of the frames manifest (vidtok_bench.manifest.manifest_sha256): "
                                                   "the exact source frames and their content; null when none was written")


class Result(_Strict):
    """One evaluation: ``results.json``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["vidtok-bench/results/v2"] = Field(SCHEMA, alias="schema")
    tokenizer: TokenizerBlock
    dataset: DatasetBlock
    protocol: ProtocolBlock
    scoring: ScoringBlock
    metrics: dict[str, MetricResult]
    bits_per_pixel: float | None = Field(description="measured from the latents actually produced")
    compression: list[int] = Field(description="T x H x W compression factors")
    throughput: Throughput
    memory: Memory
    frames: FramesBlock
    videos: VideosBlock
    run: RunBlock
    environment: dict[str, Any]
    config: dict[str, Any] = Field(description="every resolved configuration value")
    fingerprint: Fingerprint
    shard: ShardBlock | None = Field(None, description="set on one shard's partial result; null on a whole run")
    distributed: DistributedBlock | None = Field(None, description="set when the result combines torchrun ranks or shards")

    _path: Path | None = PrivateAttr(None)

    @property
    def path(self) -> str:
        return str(self._path) if self._path else "<memory>"

    @property
    def run_dir(self) -> Path | None:
        return self._path.parent if self._path else None

    # accessors every report uses ------------------------------------------------
    def value(self, metric: str) -> float | None:
        """A metric's headline value (None when absent or not a finite number)."""
        m = self.metrics.get(metric)
        if m is None or m.value is None or not math.isfinite(m.value):
            return None
        return float(m.value)

    def seconds(self) -> tuple[float, dict[str, float]]:
        """(model seconds: encode + decode, {metric: its own seconds}): where a run's compute time went."""
        return self.throughput.encode_s + self.throughput.decode_s, {m: r.time_s or 0.0 for m, r in self.metrics.items()}

    def info(self, metric: str) -> MetricInfo | None:
        m = self.metrics.get(metric)
        return m.info if m else None

    def dump(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


# ----------------------------------------------------------------------------- per-clip records
class ClipRecord(_Strict):
    clip: int
    start: int = Field(description="index of the clip's first frame among the video's sampled frames")
    frames: int = Field(description="frames scored")
    valid: int = Field(description="real (not repeated) frames")
    tail_repeated: int
    tokenizer_padded: int
    bits: float
    pixels: int
    encode_s: float
    decode_s: float
    nonfinite: bool
    stats: dict[str, list[float | None]] = Field(description="per metric: one value per scored frame (frame) or one (clip)")


class VideoRecord(_Strict):
    video: str
    path: str | None
    status: Literal["ok", "failed"] = "ok"
    error: str | None = None
    clips: list[ClipRecord] = Field(default_factory=list)
    manifest: dict[str, Any] | None = Field(None, description="the video's frames-manifest entry (ok videos), so a "
                                                              "resumed run writes the whole manifest")


class RunMeta(_Strict):
    fingerprint: Fingerprint
    started: str
    shard: str | None = None  # "I/N" of a shard's directory
    #: the code environment (environment.code_environment) of each process that worked on the run, in order; a
    #: resume adds one only when its code differs from the last
    code: list[dict[str, Any]] = []
    #: what ``fingerprint`` hashes (``data``'s dataset, protocol, videos and metrics; the tokenizer; the precision): a
    #: rerun with another fingerprint is refused naming the settings that differ
    settings: dict[str, Any] | None = None


# ----------------------------------------------------------------------------- I/O
def json_safe(obj: Any) -> Any:
    """NaN/inf become null so files stay strict JSON (a missing value, never a number)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON through a temporary file and a rename: a reader never sees a torn file."""
    text = json.dumps(json_safe(data), indent=2, default=str, allow_nan=False)
    with atomic_output(path) as tmp:
        tmp.write_text(text)


def write_result(result: Result, run_dir: Path) -> Path:
    path = Path(run_dir) / RESULTS_FILE
    write_json_atomic(path, result.dump())
    result._path = path
    return path


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


def parse_result(data: Any, source: str = "<memory>") -> Result:
    """Validate a results dict (upgrading v1); a one-line BenchError names the first bad field."""
    if not isinstance(data, dict):
        raise BenchError(f"{source}: not a vidtok-bench results file (not a JSON object)")
    version = data.get("schema")
    if version == SCHEMA_V1:
        data = upgrade_v1(data)
    elif version != SCHEMA:
        raise BenchError(f"{source}: not a vidtok-bench results file (schema {version!r}, expected {SCHEMA!r})")
    try:
        return Result.model_validate(data)
    except ValidationError as exc:
        raise BenchError(f"{source}: invalid results file: {_one_line(exc)}") from None


def load_result(path: str | Path) -> Result:
    """Load one results.json (or the one inside a run directory)."""
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_FILE
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise BenchError(f"{p}: no such results file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BenchError(f"{p}: not a valid results.json ({exc})") from None
    result = parse_result(data, str(p))
    result._path = p
    return result


def find_results(paths: str | Path | Iterable[str | Path]) -> list[Path]:
    """Expand results.json files and directories holding them (recursively), sorted; one path may be given alone
    (a bare string is a path, not the characters of one: '/' would walk the whole filesystem)."""
    out: list[Path] = []
    for p in map(Path, [paths] if isinstance(paths, (str, Path)) else paths):
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


def load_all(paths: str | Path | Iterable[str | Path]) -> list[Result]:
    return [load_result(p) for p in find_results(paths)]


#: how every line :func:`record_line` writes begins
_RECORD_START = b'{"video": '


def read_records(path: Path) -> list[VideoRecord]:
    """Video records of a per_clip.jsonl; a torn, invalid or undecodable line (an interrupted write) is skipped.

    Lines are decoded one by one, so stray bytes cost only their own line."""
    if not path.exists():
        return []
    return [r for r in map(_parse_record, path.read_bytes().splitlines()) if r is not None]


def _parse_record(line: bytes) -> VideoRecord | None:
    """One line's record, None when it holds none. A run resumed after a torn last line (no newline) appends
    its next record to that line, so the record starting later in the line is taken."""
    start = 0
    while start >= 0:
        try:
            return VideoRecord.model_validate_json(line[start:].decode("utf-8"))
        except (UnicodeDecodeError, ValidationError):
            start = line.find(_RECORD_START, start + 1)
    return None


def record_line(record: VideoRecord) -> str:
    return json.dumps(json_safe(record.model_dump(mode="json")), allow_nan=False) + "\n"


def per_video_rows(records: Iterable[VideoRecord], metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """per_video.csv rows; ``metrics`` maps name -> metric object with ``reduce_video`` (frame/clip metrics)."""
    rows = []
    for v in records:
        row: dict[str, Any] = {"video": v.video, "path": v.path, "status": v.status, "error": v.error,
                               "clips": len(v.clips), "frames": sum(c.frames for c in v.clips)}
        for name, m in metrics.items():
            vals = [x for c in v.clips for x in c.stats.get(name, [])]
            row[name] = m.reduce_video(vals) if vals else math.nan
        rows.append(row)
    return rows


def write_per_video(rows: list[dict[str, Any]], metric_names: list[str], run_dir: Path) -> Path:
    import pandas as pd

    path = Path(run_dir) / PER_VIDEO_FILE
    frame = pd.DataFrame(rows, columns=[*PER_VIDEO_COLUMNS, *metric_names])
    with atomic_output(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def read_per_video(run_dir: str | Path):
    """Successful rows of a run's per_video.csv indexed by video (None when the file is absent)."""
    import pandas as pd

    f = Path(run_dir) / PER_VIDEO_FILE
    if not f.is_file():
        return None
    try:
        df = pd.read_csv(f)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise BenchError(f"{f}: not a readable per-video CSV ({str(exc).splitlines()[0]})") from None
    if "video" not in df.columns:
        raise BenchError(f"{f}: no 'video' column")
    if "status" in df.columns:
        df = df[df["status"].astype(str) == "ok"]
    if df["video"].duplicated().any():
        raise BenchError(f"{f}: video '{df['video'][df['video'].duplicated()].iloc[0]}' appears twice")
    return df.set_index(df["video"].astype(str))


# ----------------------------------------------------------------------------- pandas
def to_frame(paths: str | Path | Iterable[str | Path]):
    """One row per results file, flat columns: ``vidtok_bench.results.to_frame("outputs/")`` (or a list of paths).

    Missing numbers are NaN (a column no result has a value for stays float, not object); the fingerprints say
    which rows may be compared, and ``df.attrs["metrics"]`` holds each metric's declared facts (MetricInfo)."""
    import pandas as pd

    def number(v: Any) -> Any:
        return math.nan if v is None else v

    rows, infos = [], {}
    for r in load_all(paths):
        row: dict[str, Any] = {
            "tokenizer": r.tokenizer.name, "family": r.tokenizer.family, "dataset": r.dataset.name,
            "protocol": r.protocol.name, "bits_per_pixel": number(r.bits_per_pixel),
            "compression": "x".join(map(str, r.compression)), "videos": r.videos.ok,
            "failed_videos": len(r.videos.failed), "status": r.run.status, "date": r.run.date,
            **{f"fingerprint.{k}": v for k, v in r.fingerprint.model_dump().items()}, "path": r.path,
        }
        row.update({name: number(r.value(name)) for name in r.metrics})
        row.update({f"throughput.{k}": v if k == "note" else number(v) for k, v in r.throughput.model_dump().items()})
        row["peak_memory_bytes"] = r.memory.peak_bytes
        rows.append(row)
        for name, m in r.metrics.items():
            infos.setdefault(name, m.info)
    df = pd.DataFrame(rows)
    df.attrs["metrics"] = infos
    return df


# ----------------------------------------------------------------------------- v1
def upgrade_v1(d: dict[str, Any]) -> dict[str, Any]:
    """A ``results/v1`` dict as v2: ``mean`` becomes ``value``, metric facts come from the registered metric
    (their owner), the protocol's ``score_tail_frames`` becomes the scoring block, the family is the name.
    Fingerprints are kept: they say what the old run was, and a v2 run of the same setup differs anyway."""
    from .registry import METRICS

    d = json.loads(json.dumps(d))  # deep copy
    d["schema"] = SCHEMA
    proto = d.setdefault("protocol", {})
    scored = bool(proto.pop("score_tail_frames", (d.get("frames") or {}).get("tail_frames_scored", False)))
    d["scoring"] = {"clamp": True, "tail_frames": "scored" if scored else "excluded", "input_range": [-1.0, 1.0],
                    "nonfinite": "NaN -> 0, +inf -> 1, -inf -> -1 (v1)"}
    plugins = METRICS.plugins()
    metrics = {}
    for name, m in (d.get("metrics") or {}).items():
        kind = "frame" if "mean" in m else "set"
        cls = plugins.get(name)
        if cls is not None:
            info = cls.info.model_dump()
        else:
            hib = bool(m.get("higher_is_better", True))
            info = {"label": name.upper(), "unit": None, "higher_is_better": hib, "precision": 3, "tolerance": "0",
                    "kind": kind, "reduction": "unknown (results/v1)"}
        out = {"value": m.get("mean", m.get("value")), "info": info, "spec": m.get("spec") or {},
               "clips": int(m.get("clips") or 0), "frames": m.get("frames"), "videos": m.get("videos"),
               "warning": m.get("warning")}
        details = {k: v for k, v in m.items() if k not in ("mean", "value", "spec", "clips", "frames", "videos", "warning", "higher_is_better")}
        out["details"] = details
        metrics[name] = out
    d["metrics"] = metrics
    tok = d.setdefault("tokenizer", {})
    tok.setdefault("family", _family_from_config(tok))
    tok.setdefault("spatial_multiple", 1)
    fr = d.setdefault("frames", {})
    fr.setdefault("tail_frames_scored", scored)
    fr.setdefault("nonfinite_clips", [])
    d.setdefault("videos", {}).setdefault("resumed", 0)
    run = d.setdefault("run", {})
    run.setdefault("sample_posterior", False)
    return d


def _family_from_config(tok: dict[str, Any]) -> str | None:
    """The family the tokenizer's plugin declares for the recorded config (its name when it cannot be built)."""
    from .registry import TOKENIZERS

    cfg = dict(tok.get("config") or {})
    try:
        return TOKENIZERS.build({**cfg, "name": cfg.get("name") or tok.get("name")}, device="cpu").family
    except Exception:  # a plugin not installed here, or a config it no longer accepts
        return tok.get("name")


def migrate(path: str | Path) -> Path:
    """Rewrite a results.json (or a run directory's) in the current schema, in place."""
    result = load_result(path)
    return write_result(result, Path(result.path).parent)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of results.json, generated from :class:`Result`."""
    schema = Result.model_json_schema(by_alias=True)
    schema["$id"] = SCHEMA
    schema["title"] = "vidtok-bench results.json"
    return schema


SCHEMA_FILE = Path(__file__).with_name("results.schema.json")


def field_table() -> str:
    """Markdown list of every model's fields (docs/results.md embeds it; a test keeps the two equal)."""
    schema = json_schema()
    defs = {**schema.get("$defs", {}), "Result": schema,
            "ClipRecord": ClipRecord.model_json_schema(), "VideoRecord": VideoRecord.model_json_schema()}

    def describe(prop: dict[str, Any]) -> str:
        if "$ref" in prop:
            return prop["$ref"].rsplit("/", 1)[-1]
        if "anyOf" in prop:
            return " | ".join(describe(p) for p in prop["anyOf"])
        if prop.get("type") == "array":
            return f"list[{describe(prop.get('items', {}))}]"
        if prop.get("type") == "object" and isinstance(prop.get("additionalProperties"), dict):
            return f"{{name: {describe(prop['additionalProperties'])}}}"
        return str(prop.get("type", "any"))

    lines = []
    for name in ("Result", "TokenizerBlock", "MetricResult", "MetricInfo", "ScoringBlock", "FramesBlock",
                 "VideosBlock", "Fingerprint", "ShardBlock", "DistributedBlock", "PartStats",
                 "VideoRecord", "ClipRecord"):
        model = defs[name]
        extra = " (plugins may add keys)" if model.get("additionalProperties", False) is not False else ""
        lines.append(f"`{name}`{extra}:\n")
        for key, prop in model.get("properties", {}).items():
            desc = prop.get("description", "")
            lines.append(f"- `{key}` ({describe(prop)})" + (f": {desc}" if desc else ""))
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    # python -m vidtok_bench.results > vidtok_bench/results.schema.json
    # python -m vidtok_bench.results migrate RESULTS...   (rewrite v1 files as v2)
    # python -m vidtok_bench.results docs docs/results.md (regenerate its field list)
    if sys.argv[1:2] == ["migrate"]:
        for p in find_results(sys.argv[2:]):
            print(migrate(p))
    elif sys.argv[1:2] == ["docs"]:
        from .report.readme import update_readme

        update_readme(sys.argv[2], field_table(), "<!-- schema:start -->", "<!-- schema:end -->")
    else:
        print(json.dumps(json_schema(), indent=2, sort_keys=True))
