"""The manifest stage: records the exact source frames of every clip the run evaluates.

Fed each batch as it streams; a video that finishes ok gets its manifest entry (also stored on its
per-clip record, so a resumed run's manifest is complete); a failed video is left out. At the end
``frames_manifest.json`` is written atomically beside results.json and its sha256 returned for
``fingerprint.manifest``. A dataset whose clips do not record their source frames (or a resumed run
whose earlier records carry no entries) gets no manifest, with one warning saying why.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable

from ..data import Clip, Dataset, VideoRef
from ..errors import BenchError
from ..manifest import Manifest, ManifestBuilder, manifest_sha256, video_from_json, write_manifest
from ..results import VideoRecord


#: what the manifest's ``dataset`` block takes from ``Dataset.info()``: informational, except what a replay needs
#: to read the files again (``frame_extensions``: the file types of folders of frames)
MANIFEST_DATASET_KEYS = ("name", "plugin", "frame_extensions")


class ManifestStage:
    def __init__(self, dataset: Dataset):
        self.dataset = dataset
        self.clip_len = dataset.preprocess.clip_len
        root = getattr(dataset, "root", None)
        self.root = None if root is None else (Path(root) if Path(root).is_dir() else Path(root).parent)
        info = dataset.info()
        self.builder = ManifestBuilder(preprocess=dataset.preprocess.as_dict(),
                                       dataset={k: info[k] for k in MANIFEST_DATASET_KEYS if k in info})
        #: why no manifest can be written (None: it can)
        self.unavailable: str | None = None
        self.videos = 0  # finished videos in the manifest

    def _relative(self, path: str | None) -> str | None:
        """The video's path under the dataset root ('/'-separated), None when it has none or lies elsewhere."""
        if path is None or self.root is None:
            return None
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(self.root))
        return None if rel == ".." or rel.startswith(".." + os.sep) else Path(rel).as_posix()

    def _give_up(self, why: str) -> None:
        if self.unavailable is None:
            self.unavailable = why
            warnings.warn(f"vidtok-bench: no frames manifest for this run: {why}", stacklevel=3)

    def resume(self, records: Iterable[VideoRecord]) -> None:
        """Entries of videos an earlier run of the same fingerprint finished."""
        without = []
        for r in records:
            if r.manifest is None:
                without.append(r.video)
                continue
            try:
                self.builder.add_video(video_from_json(r.manifest, self.clip_len, f"per-clip record of '{r.video}'"),
                                       self.clip_len)
                self.videos += 1
            except (BenchError, ValueError) as exc:
                self._give_up(f"cannot resume its entry: {exc}")
        if without:
            self._give_up(f"{len(without)} resumed video(s) have no manifest entry ({', '.join(without[:5])}"
                          f"{', ...' if len(without) > 5 else ''}; an older run, or a dataset without source frame "
                          "numbers): rerun with overwrite=true for a manifest")

    def add(self, record: VideoRecord, video: VideoRef, clips: list[Clip]) -> None:
        """One batch of a video, after scoring (a batch that failed the video is not recorded)."""
        if self.unavailable is not None or record.status != "ok":
            return
        try:
            for c in clips:
                self.builder.add_clip(video.id, self._relative(video.path), c)
        except ValueError as exc:
            self._give_up(str(exc))

    def finish(self, record: VideoRecord) -> None:
        """The video ended: an ok video's entry goes into the manifest and onto its record; a failed one is dropped."""
        if self.unavailable is not None or record.status != "ok" or not record.clips:
            self.builder.discard_video(record.video)
            return
        record.manifest = self.builder.finish_video(record.video).to_json()
        self.videos += 1

    def write(self, path: Path, order: list[str]) -> str | None:
        """Write the manifest (videos in dataset order) and return its sha256; None (and no file) when there is none
        (no video finished, or the reason was warned about)."""
        manifest: Manifest | None = None
        if self.unavailable is None and self.videos:
            try:
                manifest = self.builder.manifest()
            except ValueError as exc:  # clip lengths no manifest can describe
                self._give_up(str(exc))
        if manifest is None:
            Path(path).unlink(missing_ok=True)  # never leave an earlier run's manifest beside these results
            return None
        rank = {v: k for k, v in enumerate(order)}
        manifest.videos.sort(key=lambda v: rank.get(v.id, len(rank)))
        write_manifest(manifest, path)
        return manifest_sha256(manifest)
