"""Videos given as folders of numbered PNG/JPEG frames (DAVIS 2017 and the like).

Each sub-folder of ``root`` is one video (id: the folder name); its frames are read one at a
time (:mod:`vidtok_bench.video.images`) and take the same path as decoded video: fps sampling
from ``source_fps`` (frames carry no rate), resize, crop, clips. ``sequences`` restricts and
orders the videos (a named set's list; absent ones are reported, see ``allow_missing``);
``frames_subdir`` lets ``root`` be a set's top folder (DAVIS: ``JPEGImages/480p``).

A broken sequence (gap in the numbering, mixed frame sizes, unreadable image, empty folder)
fails alone as a VideoError; a root without sub-folders is a DatasetError.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from vidtok_bench.data import Clip, Dataset, VideoRef
from vidtok_bench.errors import ConfigError, DatasetError
from vidtok_bench.registry import register_dataset
from vidtok_bench.video.decode import frames_to_clips
from vidtok_bench.video.images import IMAGE_EXTENSIONS, natural_key, open_image_sequence

from ._common import check_bool, check_missing, check_positive


def _names(name: str, key: str, value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"dataset '{name}': {key} must be a list of names")
    return tuple(value)


@register_dataset("image_sequence")
class ImageSequenceDataset(Dataset):
    def __init__(
        self,
        name: str | None = None,
        root: str | None = None,
        source_fps: float | None = None,
        sequences: list[str] | str | None = None,
        frames_subdir: str | None = None,
        extensions: list[str] | str | None = None,
        allow_missing: bool = False,
        workers: int | None = None,
        **preprocess: Any,
    ):
        super().__init__(name=name, **preprocess)
        if root is None or str(root) in ("", "???"):
            raise ConfigError(f"dataset '{self.name}' needs a root: set dataset.root=DIR (one sub-folder of frames per video)")
        self.root = Path(str(root)).expanduser()
        self.source_fps = check_positive(self.name, "source_fps", source_fps, float)
        if self.source_fps is None:
            raise ConfigError(f"dataset '{self.name}': image frames carry no frame rate; set dataset.source_fps=F")
        self.sequences = _names(self.name, "sequences", sequences)
        self.frames_subdir = frames_subdir or None
        self.extensions = _names(self.name, "extensions", extensions) or IMAGE_EXTENSIONS
        self.allow_missing = check_bool(self.name, "allow_missing", allow_missing)
        # None: decided per video by the clips' kind (video.decode.default_workers)
        self.workers = check_positive(self.name, "workers", workers)

    def frames_root(self) -> Path:
        """The folder holding one sub-folder per video."""
        if self.frames_subdir and (self.root / self.frames_subdir).is_dir():
            return self.root / self.frames_subdir
        return self.root

    def videos(self) -> list[VideoRef]:
        if not self.root.is_dir():
            raise DatasetError(f"dataset '{self.name}': root {self.root} does not exist or is not a directory")
        base = self.frames_root()
        folders = sorted((p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: natural_key(p.name))
        if self.sequences is not None:
            present = {p.name: p for p in folders}
            check_missing(self, base, [s for s in self.sequences if s not in present], len(self.sequences), self.allow_missing)
            folders = [present[s] for s in self.sequences if s in present]
        if not folders:
            images = sum(1 for p in base.iterdir() if p.suffix.lower().lstrip(".") in self.extensions)
            extra = f" (it holds {images} images: put each video's frames in a sub-folder of its own)" if images else ""
            raise DatasetError(f"dataset '{self.name}': no sub-folders (one per video) under {base}{extra}")
        return [VideoRef(id=p.name, path=str(p)) for p in folders]

    def clips(self, video: VideoRef) -> Iterator[Clip]:
        assert video.path is not None
        src = open_image_sequence(video.path, self.source_fps, self.extensions)
        yield from frames_to_clips(src, self.preprocess, video.id, self.workers, clip_frames=self.clip_frames)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "root": str(self.root), "source_fps": self.source_fps,
                "sequences": list(self.sequences) if self.sequences else None,
                "frame_extensions": list(self.extensions)}  # also in the frames manifest: a replay reads the same files
