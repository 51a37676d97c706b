"""Replay a frame manifest: exactly the recorded source frames of each video, clip by clip.

``dataset=manifest dataset.manifest=FILE dataset.root=DIR`` evaluates the frames another run
recorded (``frames_manifest.json``), so two tokenizers, machines or papers' protocols are
compared on the same frames. The manifest fixes the frames and the clip length; the run's
``size``/``crop``/``resize`` still apply (``fps``, ``sampling``, ``clip_len``, ``clip_stride``,
``tail`` and ``max_frames`` come from the manifest). Each video's file is ``root/path``
(a folder is read as numbered frames, ``.yuv`` with the recorded size and rate). After a video
is read, its checksum must equal the recorded ``video_checksum``; a changed or missing file
fails that video alone (VideoError), as decoding errors do.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Iterator

from vidtok_bench.data import Clip, Dataset, Preprocess, VideoRef
from vidtok_bench.errors import ConfigError, DatasetError, VideoError, check_choice
from vidtok_bench.manifest import Manifest, ManifestVideo, load_manifest, manifest_sha256
from vidtok_bench.registry import register_dataset
from vidtok_bench.video.decode import FrameSource, open_video, replay_clips
from vidtok_bench.video.images import IMAGE_EXTENSIONS, open_image_sequence
from vidtok_bench.video.yuv import MATRICES

from ._common import check_positive


@register_dataset("manifest")
class ManifestDataset(Dataset):
    def __init__(
        self,
        name: str | None = None,
        manifest: str | None = None,
        root: str | None = None,
        yuv_matrix: str | None = None,
        workers: int | None = None,
        **preprocess: Any,
    ):
        super().__init__(name=name, **preprocess)
        if manifest is None or str(manifest) in ("", "???"):
            raise ConfigError(f"dataset '{self.name}' needs dataset.manifest=FILE (a run's frames_manifest.json)")
        if root is None or str(root) in ("", "???"):
            raise ConfigError(f"dataset '{self.name}' needs dataset.root=DIR: the folder the manifest's paths are relative to")
        self.manifest_path = Path(str(manifest)).expanduser()
        self.root = Path(str(root)).expanduser()
        self.yuv_matrix = yuv_matrix or "bt709"
        check_choice(f"dataset '{self.name}': yuv_matrix", self.yuv_matrix, MATRICES)
        # None: decided per video by the clips' kind (video.decode.default_workers)
        self.workers = check_positive(self.name, "workers", workers)
        self.manifest: Manifest = load_manifest(self.manifest_path)
        self.extensions = recorded_extensions(self.manifest)
        self.preprocess = self._frames_from_manifest(self.preprocess, preprocess.get("clip_len"))

    def _frames_from_manifest(self, run: Preprocess, asked_clip_len: int | None) -> Preprocess:
        """The run's resize settings with the manifest's frame choice (recorded, so results say what was used)."""
        m = self.manifest
        if asked_clip_len is not None and asked_clip_len != m.clip_len:
            warnings.warn(f"dataset '{self.name}': clip_len={asked_clip_len} ignored, the manifest's clips are "
                          f"{m.clip_len or 'whole-video'} frames", stacklevel=3)
        try:
            return Preprocess(**m.frame_settings(run.as_dict()))
        except ConfigError as exc:
            raise DatasetError(f"manifest {self.manifest_path}: recorded preprocessing is not valid: {exc}") from None

    def videos(self) -> list[VideoRef]:
        if not self.root.is_dir():
            raise DatasetError(f"dataset '{self.name}': root {self.root} does not exist or is not a directory")
        return [VideoRef(id=v.id, path=str(self.root / v.path) if v.path else None, meta={"manifest": v})
                for v in self.manifest.videos]

    def _open(self, v: ManifestVideo, path: Path) -> FrameSource:
        if not path.exists():
            raise VideoError(str(path), f"video '{v.id}' of the manifest is not under the root {self.root}")
        if path.is_dir():
            if v.source_fps is None:
                raise VideoError(str(path), f"video '{v.id}': the manifest records no source_fps for these frames")
            return open_image_sequence(path, v.source_fps, self.extensions)
        size = v.source_size or (None, None)
        return open_video(path, width=size[0], height=size[1], source_fps=v.source_fps, matrix=self.yuv_matrix) \
            if path.suffix.lower() == ".yuv" else open_video(path)

    def clips(self, video: VideoRef) -> Iterator[Clip]:
        v: ManifestVideo = video.meta.get("manifest") or self.manifest.video(video.id)
        if not v.path:
            raise VideoError(video.id, "the manifest records no file for this video (generated data cannot be replayed)")
        path = self.root / v.path
        src = self._open(v, path)
        if v.source_size and (src.width, src.height) != tuple(v.source_size):
            raise VideoError(str(path), f"video '{v.id}': frames are {src.width}x{src.height}, the manifest recorded "
                                        f"{v.source_size[0]}x{v.source_size[1]} (content no longer matches the manifest)")
        windows = [(c.start, c.valid) for c in v.clips]
        for clip in replay_clips(src, self.preprocess, v.id, v.positions(), windows, self.manifest.clip_len, self.workers,
                                 clip_frames=self.clip_frames):
            if clip.video_checksum is not None and v.video_checksum and clip.video_checksum != v.video_checksum:
                raise VideoError(str(path), f"video '{v.id}': content no longer matches the manifest "
                                            f"(video_checksum {clip.video_checksum[:12]}…, recorded {v.video_checksum[:12]}…)")
            yield clip

    def info(self) -> dict[str, Any]:
        return {**super().info(), "root": str(self.root), "manifest": str(self.manifest_path),
                "manifest_sha256": manifest_sha256(self.manifest),
                "frame_extensions": list(self.extensions)}  # recorded again: a replay's manifest replays too


def recorded_extensions(m: Manifest) -> tuple[str, ...]:
    """The frame-file extensions the recording run read in folders of frames (its ``dataset`` block); the
    image_sequence defaults for manifests that record none (older runs, or no frame folders)."""
    ext = (m.dataset or {}).get("frame_extensions")
    if isinstance(ext, list) and ext and all(isinstance(e, str) and e for e in ext):
        return tuple(ext)
    return IMAGE_EXTENSIONS
