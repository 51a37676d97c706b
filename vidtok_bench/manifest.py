"""Frame manifests: exactly which source frames a run evaluated, per video, and their checksum.

Why: papers cut the same videos into different frames (17n vs 4n+1 frames, stride vs
timestamp sampling, different start frames), and such results cannot be compared. A run
writes ``frames_manifest.json`` beside its results; ``dataset=manifest`` replays it, and
:func:`diff_manifests` names the videos whose frames differ between two runs.

Format (JSON, ``"schema": "vidtok-bench/manifest/v4"``)::

    {"schema": "vidtok-bench/manifest/v4",
     "clip_len": 17,                  # frames per clip (T); null: each clip is its valid frames
     "preprocess": {...},             # informational: how the frames were chosen (may be null)
     "dataset": {...},                # informational: name/plugin, frame_extensions (may be null)
     "videos": [
       {"id": "videoSRC01", "path": "videoSRC01_1920x1080_30.yuv",  # relative to the dataset root
        "source_fps": 30.0, "source_size": [1920, 1080],            # (W, H) before resize
        "video_checksum": "<32 hex>",   # vidtok_bench.video.clips.FrameDigest: XXH3-128 of the held frames' XXH3-128s
                                        # (of their decoded YUV 4:2:0 planes, or RGB for other sources)
        "clips": [{"start": 0, "valid": 17, "indices": [[0, 17, 1]]}, ...]}]}

A clip's ``start`` is its position among the video's sampled frames and ``valid`` its real
frames; ``indices`` are the source frame numbers of those ``valid`` frames as run-length
segments ``[start, stop, step]`` (Python ``range`` semantics, concatenated, exact round trip).
Frames ``valid..clip_len-1`` repeat the last real frame (tail padding).

v1, v2 and v3 manifests (v1/v2 ``video_sha256``: v1 one running sha256 over the RGB frames' bytes, v2 the
sha256 of per-frame sha256s, whose ~5 ms per 1080p frame exceeded a GPU host's decode; v3 ``video_checksum``
chained XXH3-128s of the RGB frames, which needed the RGB conversion on the host even when the run converts
on the GPU) still load and replay the same frames; their checksums are of another definition, cannot be
compared with v4's and are dropped, with a warning.
"""
from __future__ import annotations

import hashlib
import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Sequence

from .atomic import atomic_output
from .data import Clip
from .errors import DatasetError

SCHEMA = "vidtok-bench/manifest/v4"
#: read, with their video checksums (another definition) dropped; see the module docstring
OLD_SCHEMAS = ("vidtok-bench/manifest/v1", "vidtok-bench/manifest/v2", "vidtok-bench/manifest/v3")
#: preprocessing keys that choose frames: a replay takes them from the manifest, not from the run
FRAME_KEYS = ("fps", "sampling", "clip_stride", "tail", "max_frames")
_SCHEMA_PREFIX = "vidtok-bench/manifest/"
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


# ---------------------------------------------------------------------------- index segments
def encode_indices(indices: Sequence[int]) -> list[list[int]]:
    """Run-length segments ``[start, stop, step]`` whose concatenated ranges give ``indices`` exactly.

    Stride sampling gives one segment per clip; a repeated frame (timestamp sampling above the
    source rate) starts a new segment, since a range cannot repeat a value.
    """
    segs: list[list[int]] = []
    i, n = 0, len(indices)
    while i < n:
        a = int(indices[i])
        if i + 1 < n and int(indices[i + 1]) != a:
            step = int(indices[i + 1]) - a
            j = i + 1
            while j + 1 < n and int(indices[j + 1]) - int(indices[j]) == step:
                j += 1
            segs.append([a, int(indices[j]) + step, step])
            i = j + 1
        else:
            segs.append([a, a + 1, 1])
            i += 1
    return segs


def decode_indices(segments: Any, where: str = "indices") -> tuple[int, ...]:
    """The inverse of :func:`encode_indices` (ValueError naming ``where`` on a malformed segment)."""
    if not isinstance(segments, list):
        raise ValueError(f"{where} must be a list of [start, stop, step] segments")
    out: list[int] = []
    for k, seg in enumerate(segments):
        if (not isinstance(seg, list) or len(seg) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in seg) or seg[2] == 0):
            raise ValueError(f"{where}[{k}] = {seg!r} is not a [start, stop, step] segment of integers with step != 0")
        r = range(*seg)
        if not r:
            raise ValueError(f"{where}[{k}] = {seg!r} is empty")
        out.extend(r)
    return tuple(out)


def format_indices(indices: Sequence[int], limit: int = 60) -> str:
    """Short human form, e.g. ``0-16`` or ``0-48/3,50``, for messages."""
    parts = []
    for a, stop, step in encode_indices(indices):
        last = stop - step
        parts.append(str(a) if last == a else f"{a}-{last}" + (f"/{step}" if step != 1 else ""))
    text = ",".join(parts)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---------------------------------------------------------------------------- data model
@dataclass(frozen=True)
class ManifestClip:
    start: int  # position among the video's sampled frames
    valid: int  # real frames; the rest of the clip repeats the last one
    indices: tuple[int, ...]  # source frame numbers of the valid frames

    def source_indices(self, length: int | None) -> tuple[int, ...]:
        """All T frames' source numbers, tail padding included (as on :class:`~vidtok_bench.data.Clip`)."""
        t = self.valid if length is None else length
        return self.indices + (self.indices[-1],) * (t - self.valid)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "valid": self.valid, "indices": encode_indices(self.indices)}


@dataclass
class ManifestVideo:
    id: str
    path: str | None  # relative to the dataset root, '/'-separated
    source_fps: float | None = None
    source_size: tuple[int, int] | None = None  # (W, H)
    video_checksum: str | None = None
    clips: list[ManifestClip] = field(default_factory=list)

    def positions(self) -> list[tuple[int, int]]:
        """(sampled position, source index) of every real frame the clips hold, each position once, in order.

        These are the frames ``video_checksum`` covers.
        """
        held: dict[int, int] = {}
        for c in self.clips:
            for k, i in enumerate(c.indices):
                held.setdefault(c.start + k, i)
        return sorted(held.items())

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "path": self.path, "source_fps": self.source_fps,
            "source_size": list(self.source_size) if self.source_size else None,
            "video_checksum": self.video_checksum, "clips": [c.to_json() for c in self.clips],
        }


@dataclass
class Manifest:
    clip_len: int | None
    videos: list[ManifestVideo]
    preprocess: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None
    #: the schema the document was written with (an older one: its checksums were dropped on loading)
    written_as: str = SCHEMA

    def video(self, video_id: str) -> ManifestVideo:
        for v in self.videos:
            if v.id == video_id:
                return v
        raise KeyError(video_id)

    def frame_settings(self, run: dict[str, Any]) -> dict[str, Any]:
        """``run``'s preprocessing with the manifest's frame choice: its ``clip_len`` and the recorded
        :data:`FRAME_KEYS` (what a replay uses, and so what its fingerprint records)."""
        recorded = self.preprocess or {}
        return {**run, **{k: recorded.get(k, run.get(k)) for k in FRAME_KEYS}, "clip_len": self.clip_len}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA, "clip_len": self.clip_len, "preprocess": self.preprocess, "dataset": self.dataset,
            "videos": [v.to_json() for v in self.videos],
        }


# ---------------------------------------------------------------------------- parsing / validation
def _int(v: Any, where: str, minimum: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ValueError(f"{where}={v!r} must be an integer >= {minimum}")
    return v


def _video_from_json(d: Any, k: int, clip_len: int | None) -> ManifestVideo:
    where = f"videos[{k}]"
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be an object")
    vid = d.get("id")
    if not isinstance(vid, str) or not vid:
        raise ValueError(f"{where}.id must be a non-empty string")
    where = f"video '{vid}'"
    path = d.get("path")
    if path is not None:
        if not isinstance(path, str) or not path:
            raise ValueError(f"{where}: path must be a string or null")
        pp = PurePosixPath(path)
        if pp.is_absolute() or re.match(r"^[A-Za-z]:", path) or ".." in pp.parts:
            raise ValueError(f"{where}: path {path!r} must be relative to the dataset root")
    fps = d.get("source_fps")
    if fps is not None and (not isinstance(fps, (int, float)) or isinstance(fps, bool) or not fps > 0):
        raise ValueError(f"{where}: source_fps={fps!r} must be a positive number or null")
    size = d.get("source_size")
    if size is not None:
        if not isinstance(size, list) or len(size) != 2:
            raise ValueError(f"{where}: source_size must be [width, height] or null")
        size = (_int(size[0], f"{where}: source_size width", 1), _int(size[1], f"{where}: source_size height", 1))
    sha = d.get("video_checksum")
    if sha is not None and (not isinstance(sha, str) or not _HEX32.match(sha)):
        raise ValueError(f"{where}: video_checksum must be 32 lowercase hex digits or null")
    raw = d.get("clips")
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{where}: clips must be a non-empty list")
    clips = []
    for j, c in enumerate(raw):
        cw = f"{where} clip {j}"
        if not isinstance(c, dict):
            raise ValueError(f"{cw} must be an object")
        start = _int(c.get("start"), f"{cw}: start", 0)
        valid = _int(c.get("valid"), f"{cw}: valid", 1)
        indices = decode_indices(c.get("indices"), f"{cw}: indices")
        if len(indices) != valid:
            raise ValueError(f"{cw}: indices name {len(indices)} frames, valid={valid}")
        if min(indices) < 0:
            raise ValueError(f"{cw}: source frame numbers must not be negative")
        if clip_len is not None and valid > clip_len:
            raise ValueError(f"{cw}: valid={valid} exceeds clip_len={clip_len}")
        if clips and start <= clips[-1].start:
            raise ValueError(f"{cw}: clip starts must increase")
        clips.append(ManifestClip(start, valid, indices))
    video = ManifestVideo(vid, path, float(fps) if fps is not None else None, size, sha, clips)
    held: dict[int, int] = {}
    for c in clips:
        for pos, i in zip(range(c.start, c.start + c.valid), c.indices):
            if held.setdefault(pos, i) != i:
                raise ValueError(f"{where}: overlapping clips disagree on the frame at position {pos}")
    order = [i for _, i in video.positions()]
    if any(b < a for a, b in zip(order, order[1:])):
        raise ValueError(f"{where}: source frame numbers must not decrease along the video (it is read once, in order)")
    return video


def video_from_json(d: Any, clip_len: int | None, source: str = "manifest entry") -> ManifestVideo:
    """One video's entry (as :meth:`ManifestVideo.to_json` writes it), validated (DatasetError naming ``source``)."""
    try:
        return _video_from_json(d, 0, clip_len)
    except ValueError as exc:
        raise DatasetError(f"{source}: {exc}") from None


def manifest_from_json(doc: Any, source: str = "manifest") -> Manifest:
    """Validate a parsed manifest document (DatasetError naming ``source`` and the problem)."""
    try:
        if not isinstance(doc, dict):
            raise ValueError("must be a JSON object")
        schema = doc.get("schema")
        written_as = schema if schema in OLD_SCHEMAS else SCHEMA
        if schema in OLD_SCHEMAS:
            warnings.warn(f"{source}: a {schema} manifest: its video checksums use an older definition and are not "
                          f"verified (the frames are replayed exactly); a run writes a {SCHEMA} one", stacklevel=2)
            doc = {**doc, "schema": SCHEMA,
                   "videos": [{**{k: x for k, x in v.items() if k not in ("video_sha256", "video_checksum")},
                               "video_checksum": None}
                              if isinstance(v, dict) else v for v in doc.get("videos") or []]}
        elif schema != SCHEMA:
            if isinstance(schema, str) and schema.startswith(_SCHEMA_PREFIX):
                raise ValueError(f"schema {schema!r} is not supported (this vidtok-bench reads {SCHEMA})")
            raise ValueError(f"not a frame manifest (schema {schema!r}, expected {SCHEMA!r})")
        clip_len = doc.get("clip_len")
        if clip_len is not None:
            clip_len = _int(clip_len, "clip_len", 1)
        videos_raw = doc.get("videos")
        if not isinstance(videos_raw, list) or not videos_raw:
            raise ValueError("videos must be a non-empty list")
        videos = [_video_from_json(v, k, clip_len) for k, v in enumerate(videos_raw)]
        seen: set[str] = set()
        for v in videos:
            if v.id in seen:
                raise ValueError(f"video id '{v.id}' appears twice")
            seen.add(v.id)
        for key in ("preprocess", "dataset"):
            if doc.get(key) is not None and not isinstance(doc[key], dict):
                raise ValueError(f"{key} must be an object or null")
    except ValueError as exc:
        raise DatasetError(f"{source}: {exc}") from None
    return Manifest(clip_len, videos, doc.get("preprocess"), doc.get("dataset"), written_as)


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file (DatasetError with a one-line reason)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"manifest {path} is not valid JSON: {str(exc).splitlines()[0]}") from None
    return manifest_from_json(doc, f"manifest {path}")


def _as_manifest(obj: str | Path | Manifest | dict[str, Any]) -> Manifest:
    if isinstance(obj, Manifest):
        return obj
    if isinstance(obj, dict):
        return manifest_from_json(obj)
    return load_manifest(obj)


def manifest_sha256(obj: str | Path | Manifest | dict[str, Any]) -> str:
    """A stable hash of the frames a manifest names, for a run's data fingerprint.

    It covers ``schema``, ``clip_len`` and, per video, id, source fps/size, checksum and clips,
    as canonical JSON (sorted keys, no whitespace, videos sorted by id). It leaves out what
    does not change the frames: key order, whitespace, video order, each file's path under its
    root (a location, like the root itself) and the informational ``preprocess``/``dataset``.
    """
    m = _as_manifest(obj)
    videos = []
    for v in sorted(m.videos, key=lambda v: v.id):
        d = v.to_json()
        del d["path"]
        videos.append(d)
    canon = json.dumps({"schema": SCHEMA, "clip_len": m.clip_len, "videos": videos},
                       sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canon.encode("ascii")).hexdigest()


def _holds_records(value: Any) -> bool:
    """Whether ``value`` contains a list of objects (videos, clips): those get one line per item."""
    if isinstance(value, dict):
        return any(map(_holds_records, value.values()))
    if isinstance(value, list):
        return any(isinstance(v, dict) or _holds_records(v) for v in value)
    return False


def manifest_text(doc: Any, indent: str = "") -> str:
    """JSON with one line per clip (and per short object): readable, and an hour-long video's
    manifest stays a few hundred KB instead of a dozen lines for every clip."""
    if not _holds_records(doc):
        return json.dumps(doc, ensure_ascii=False, allow_nan=False) + ("" if indent else "\n")
    inner = indent + " "
    if isinstance(doc, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {manifest_text(v, inner)}" for k, v in doc.items()]
        text = "{\n" + ",\n".join(items) + f"\n{indent}}}"
    else:
        text = "[\n" + ",\n".join(f"{inner}{manifest_text(v, inner)}" for v in doc) + f"\n{indent}]"
    return text if indent else text + "\n"


def write_manifest(manifest: Manifest, path: str | Path) -> Path:
    """Write atomically (temp file in the same folder, fsync, rename): readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = manifest_text(manifest.to_json())
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- building
class ManifestBuilder:
    """Collects the clips a run evaluates into a :class:`Manifest`.

    Call ``add_clip`` for each clip of a video (in order), then ``finish_video`` once the
    video's last clip was evaluated; ``discard_video`` drops a video that failed part-way
    (its frames were not all evaluated). ``add_video`` takes a finished entry, e.g. from the
    manifest of a run being resumed.
    """

    def __init__(self, preprocess: dict[str, Any] | None = None, dataset: dict[str, Any] | None = None):
        self.preprocess = preprocess
        self.dataset = dataset
        self._open: dict[str, ManifestVideo] = {}
        self._done: dict[str, ManifestVideo] = {}
        self._lengths: set[int] = set()  # clip lengths T seen
        self._all_full = True  # every clip's T equals its valid frames (whole-video clips)

    def add_clip(self, video_id: str, path_rel: str | None, clip: Clip) -> None:
        if video_id in self._done:
            raise ValueError(f"video '{video_id}' was already finished")
        if not clip.source_indices:
            raise ValueError(f"clip {clip.index} of '{video_id}' has no source_indices (the dataset does not record them)")
        entry = self._open.get(video_id)
        if entry is None:
            path = None if path_rel is None else PurePosixPath(Path(path_rel).as_posix()).as_posix()
            entry = self._open[video_id] = ManifestVideo(video_id, path, clip.source_fps, clip.source_size)
        elif clip.start <= entry.clips[-1].start:
            raise ValueError(f"clips of '{video_id}' must be added in order (clip {clip.index} starts at {clip.start})")
        length = int(clip.frames.shape[1])
        self._lengths.add(length)
        self._all_full &= length == clip.valid
        entry.clips.append(ManifestClip(int(clip.start), int(clip.valid), tuple(int(i) for i in clip.source_indices[: clip.valid])))
        if clip.video_checksum:
            entry.video_checksum = clip.video_checksum

    def finish_video(
        self, video_id: str, *, video_checksum: str | None = None, source_size: tuple[int, int] | None = None,
        source_fps: float | None = None,
    ) -> ManifestVideo:
        """Close a video's entry; keyword values override what the clips carried."""
        entry = self._open.pop(video_id, None)
        if entry is None:
            raise ValueError(f"video '{video_id}' has no clips to finish")
        if video_checksum is not None:
            entry.video_checksum = video_checksum
        if source_size is not None:
            entry.source_size = (int(source_size[0]), int(source_size[1]))
        if source_fps is not None:
            entry.source_fps = float(source_fps)
        self._done[video_id] = entry
        return entry

    def discard_video(self, video_id: str) -> None:
        self._open.pop(video_id, None)

    def add_video(self, video: ManifestVideo, clip_len: int | None) -> None:
        if video.id in self._done or video.id in self._open:
            raise ValueError(f"video '{video.id}' is already in the manifest")
        self._done[video.id] = video
        for c in video.clips:
            length = clip_len if clip_len is not None else c.valid
            self._lengths.add(length)
            self._all_full &= length == c.valid

    def manifest(self) -> Manifest:
        if self._open:
            raise ValueError(f"videos not finished: {', '.join(self._open)}")
        if not self._done:
            raise ValueError("no finished videos to write")
        if len(self._lengths) == 1:
            clip_len: int | None = next(iter(self._lengths))
        elif self._all_full:
            clip_len = None
        else:
            raise ValueError(f"clips have different lengths {sorted(self._lengths)} and some are tail-padded")
        return manifest_from_json(Manifest(clip_len, list(self._done.values()), self.preprocess, self.dataset).to_json())

    def write(self, path: str | Path) -> Path:
        return write_manifest(self.manifest(), path)


# ---------------------------------------------------------------------------- comparing
def diff_manifests(
    a: str | Path | Manifest | dict[str, Any], b: str | Path | Manifest | dict[str, Any], labels: tuple[str, str] = ("a", "b"),
) -> list[str]:
    """One line per video whose evaluated frames differ (empty: the same frames).

    Used to explain why two runs are not comparable: a video only one run has, different
    source frame numbers or clip layout, the same numbers over different content, or the same
    frames with another recorded source rate or size.
    """
    ma, mb = _as_manifest(a), _as_manifest(b)
    la, lb = labels
    va, vb = {v.id: v for v in ma.videos}, {v.id: v for v in mb.videos}
    out = []
    for vid in [*va, *(v for v in vb if v not in va)]:
        x, y = va.get(vid), vb.get(vid)
        if x is None or y is None:
            out.append(f"{vid}: only in {la if y is None else lb}")
            continue
        diff = _clip_difference(x, ma.clip_len, y, mb.clip_len, la, lb)
        if diff:
            out.append(f"{vid}: {diff}")
        elif x.video_checksum and y.video_checksum and x.video_checksum != y.video_checksum:
            out.append(f"{vid}: same frame numbers, different content "
                       f"(video_checksum {x.video_checksum[:12]}… in {la}, {y.video_checksum[:12]}… in {lb})")
        elif (x.source_fps, x.source_size) != (y.source_fps, y.source_size):  # in the hash too
            out.append(f"{vid}: the same frames, but source {_source(x, y)} in {la}, {_source(y, x)} in {lb}")
    return out


def _source(v: ManifestVideo, other: ManifestVideo) -> str:
    """``v``'s source rate and/or size where they differ from ``other``'s, e.g. ``25 fps`` or ``1920x1080``."""
    parts = []
    if v.source_fps != other.source_fps:
        parts.append("no fps" if v.source_fps is None else f"{v.source_fps:g} fps")
    if v.source_size != other.source_size:
        parts.append("no size" if v.source_size is None else f"{v.source_size[0]}x{v.source_size[1]}")
    return ", ".join(parts)


def _clip_difference(x: ManifestVideo, lx: int | None, y: ManifestVideo, ly: int | None, la: str, lb: str) -> str | None:
    for k, (cx, cy) in enumerate(zip(x.clips, y.clips)):
        sx, sy = cx.source_indices(lx), cy.source_indices(ly)
        if sx != sy or cx.valid != cy.valid:
            return (f"different frames from clip {k} on ({la}: {len(sx)} frames {format_indices(sx)}, "
                    f"{lb}: {len(sy)} frames {format_indices(sy)})")
    if len(x.clips) != len(y.clips):
        return f"{len(x.clips)} clips in {la}, {len(y.clips)} in {lb}"
    return None

