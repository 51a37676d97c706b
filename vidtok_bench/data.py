"""Dataset interface: videos, preprocessing settings and the clips the runner consumes."""
from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

from .errors import ConfigError, check_choice

if TYPE_CHECKING:  # keep `import vidtok_bench.data` (and so configuration) free of torch
    import torch

SAMPLING_MODES = ("stride", "timestamps")
TAIL_MODES = ("repeat", "drop")
CROP_MODES = ("center", "none")
#: resize filters; each is part of a protocol's definition
RESIZE_FILTERS = ("bilinear_antialias", "bicubic_antialias", "none")


@dataclass(frozen=True)
class Preprocess:
    """How frames are sampled, resized and cut into clips (recorded in every result)."""

    fps: float | None = 30.0  # None: native frame rate
    sampling: str = "stride"  # 'stride': every round(src/fps)-th frame; 'timestamps': nearest frame
    size: int | None = 256  # short side after resize; None: native size
    crop: str = "center"  # centre crop to size x size, or 'none' (keep aspect)
    resize: str = "bilinear_antialias"  # as torchvision v2 Resize(antialias=True) on float [0,1]
    clip_len: int | None = 17  # None: the whole video as one clip
    clip_stride: int | None = None  # None: clip_len (non-overlapping)
    tail: str = "repeat"  # last partial clip: repeat its last frame, or drop it
    #: stop after this many sampled frames per video; or ``"max(N, Ss)"``: N frames, or S seconds when that is more
    #: (TokenBench cuts videos to 10 s but keeps at least 300 frames)
    max_frames: int | str | None = None

    def __post_init__(self) -> None:
        check_choice("dataset.sampling", self.sampling, SAMPLING_MODES)
        check_choice("dataset.tail", self.tail, TAIL_MODES)
        check_choice("dataset.crop", self.crop, CROP_MODES)
        check_choice("dataset.resize", self.resize, RESIZE_FILTERS)
        for key in ("fps", "size", "clip_len", "clip_stride"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, (int, float)) or v <= 0):
                raise ConfigError(f"dataset.{key}={v!r} must be a positive number or null")
        frame_cap(self.max_frames)

    def frame_limit(self, fps: float | None) -> int | None:
        """Sampled frames kept per video at ``fps`` (the sampled frames' rate): ``max_frames``, or for
        ``"max(N, Ss)"`` the larger of N and ceil(S x fps) (N when the rate is unknown)."""
        frames, seconds = frame_cap(self.max_frames)
        if seconds is None or not fps:
            return frames
        return max(frames or 0, math.ceil(seconds * fps))  # as TokenBench's max(ceil(fps * 10), 300)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FRAME_CAP = re.compile(r"^max\(\s*(\d+)\s*,\s*(\d+(?:\.\d+)?)\s*s\s*\)$")


def frame_cap(value: Any) -> tuple[int | None, float | None]:
    """``max_frames`` as (frames, seconds): ``300`` -> (300, None), ``"max(300, 10s)"`` -> (300, 10.0), None ->
    (None, None); ConfigError naming the value otherwise."""
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value, None
    m = _FRAME_CAP.match(value.strip()) if isinstance(value, str) else None
    if m is None or int(m.group(1)) <= 0 or float(m.group(2)) <= 0:
        raise ConfigError(f"dataset.max_frames={value!r} must be a positive integer, \"max(N, Ss)\" (N frames, or S "
                          "seconds when that is more) or null")
    return int(m.group(1)), float(m.group(2))


@dataclass
class VideoRef:
    """One video of a dataset."""

    id: str
    path: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Clip:
    """A preprocessed clip: ``frames`` is float32 (3, T, H, W) in [-1, 1] (or, for ``preprocess_on=device``,
    a uint8 (3, T, H, W) view of the source-size frames, which the preprocess stage resizes, or (1, T, N)
    packed YUV 4:2:0 source frames with ``yuv`` set, which it converts to RGB first)."""

    video_id: str
    index: int
    frames: torch.Tensor
    start: int  # index of the first frame among the video's sampled frames
    valid: int  # frames that are real; frames[:, valid:] repeat the last real frame
    source_fps: float | None = None
    fps: float | None = None
    #: the source video's frame number of each of the T frames (tail padding repeats the last),
    #: so a run records exactly which frames it evaluated (frame-count rules differ between papers)
    source_indices: tuple[int, ...] = ()
    #: on a video's last clip only: XXH3-128 of the XXH3-128s of the decoded source frames its clips hold (see
    #: ``vidtok_bench.video.clips.FrameDigest``), so a replay can tell that the content changed
    video_checksum: str | None = None
    #: (width, height) of the source frames before resize
    source_size: tuple[int, int] | None = None
    #: packed YUV frames only: the exact table that converts them to RGB (``vidtok_bench.video.yuv_lut.Yuv420Lut``)
    yuv: Any = None

    @property
    def tail_padded(self) -> int:
        return self.frames.shape[1] - self.valid


class Dataset(ABC):
    """A set of videos plus the preprocessing that turns each into clips.

    Implementations stream: decode, resize and emit clip by clip, never holding a whole
    video's full-resolution frames as floats. ``clips`` raises
    :class:`~vidtok_bench.errors.VideoError` for a broken video so the runner can record it.
    """

    plugin_name: str = ""
    #: options accepted through ``**preprocess`` (the registry checks them with the named ones)
    extra_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str | None = None, **preprocess: Any):
        self.name = name or self.plugin_name
        known = set(Preprocess.__dataclass_fields__)
        unknown = set(preprocess) - known
        if unknown:
            raise ConfigError(f"dataset '{self.name}' got unknown option(s): {', '.join(sorted(unknown))}")
        self.preprocess = Preprocess(**preprocess)
        #: videos a named set lists but the root lacks (run with allow_missing=true); reported by info()
        self.missing: list[str] = []
        #: what clips carry, set by the runner (``vidtok_bench.video.decode.CLIP_FRAMES``): 'float' (resized,
        #: [-1, 1]), or with ``preprocess_on=device`` 'uint8'/'pinned' (the sampled source frames, resized by
        #: the run's preprocess stage on the device). Datasets that ignore it give float clips: also accepted.
        self.clip_frames = "float"

    @abstractmethod
    def videos(self) -> list[VideoRef]:
        """The dataset's videos, in a stable order (raises DatasetError if unusable)."""

    @abstractmethod
    def clips(self, video: VideoRef) -> Iterator[Clip]:
        """Preprocessed clips of one video (raises VideoError when it cannot be read)."""

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "plugin": self.plugin_name, "preprocess": self.preprocess.as_dict(),
                "missing": list(self.missing)}


#: the preprocessing keys every dataset accepts (conf/preprocess.yaml lists the same; a test checks)
PREPROCESS_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Preprocess))
Dataset.extra_options = PREPROCESS_KEYS


def walk_files(root: Path) -> Iterator[Path]:
    """Files under ``root``, recursively, depth-first in name order, hidden names skipped.

    Symlinked folders are followed (sets often live on another disk, linked into the root), each real
    folder once, so a link back up the tree ends there; unreadable folders are skipped.
    """
    seen: set[tuple[int, int]] = set()

    def visit(folder: Path) -> Iterator[Path]:
        try:
            st = folder.stat()
            entries = sorted(folder.iterdir(), key=lambda p: p.name)
        except OSError:
            return
        if (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        for p in entries:
            if p.name.startswith("."):
                continue
            if p.is_dir():
                yield from visit(p)
            elif p.is_file():
                yield p

    yield from visit(Path(root))
