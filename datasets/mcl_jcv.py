"""MCL-JCV: the 30 source videos the VidTok model card is evaluated on, from a local ``root``.

Accepted files (searched recursively under ``root``): the official distribution's raw
1920x1080 8-bit YUV 4:2:0 sources ``videoSRC01_1920x1080_30.yuv`` ... (size and fps from the
``*_WIDTHxHEIGHT_FPS.yuv`` name, or ``width``/``height``/``source_fps`` in the config) or
conversions of them to a container format (``videoSRC01.mp4``, ...). One file per source
number is used; raw YUV is preferred when both exist (no second lossy encode). Video ids are
``videoSRC01`` ... ``videoSRC30``. Absent sources stop the run, as for every named set, unless
``allow_missing=true`` (then they are recorded in ``dataset.missing``).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from vidtok_bench.data import VideoRef, walk_files
from vidtok_bench.errors import DatasetError
from vidtok_bench.registry import register_dataset

from ._common import FileDataset, check_bool, check_missing

NUM_SOURCES = 30
_SRC = re.compile(r"^videosrc(\d{1,2})(?=[_.\-]|$)", re.IGNORECASE)
#: preference order when a source exists in several forms
EXTENSIONS = ("yuv", "y4m", "mkv", "mp4", "mov", "avi", "webm")

HOW_TO_GET = (
    "MCL-JCV is distributed by the Media Communications Lab (MCL) of the University of Southern California "
    "(the 'MCL-JCV dataset' page of USC MCL, released with Wang et al., ICIP 2016); request/download it there, "
    "unpack the 30 source videos videoSRC01..30_1920x1080_FPS.yuv (or mp4 conversions) into one folder "
    "and pass dataset.root=DIR"
)


@register_dataset("mcl_jcv")
class MclJcvDataset(FileDataset):
    def __init__(self, name: str | None = None, root: str | None = None, allow_missing: bool = False, **kw: Any):
        if root is None or str(root) in ("", "???"):
            raise DatasetError(f"mcl_jcv needs dataset.root=DIR with the MCL-JCV sources; {HOW_TO_GET}")
        super().__init__(name=name, root=root, **kw)
        self.allow_missing = check_bool(self.name, "allow_missing", allow_missing)

    def videos(self) -> list[VideoRef]:
        root = self.root
        if not root.is_dir():
            raise DatasetError(f"MCL-JCV root {root} does not exist or is not a directory; {HOW_TO_GET}")
        found: dict[int, Path] = {}
        for p in walk_files(root):
            ext = p.suffix.lower().lstrip(".")
            m = _SRC.match(p.name)
            if not m or ext not in EXTENSIONS:
                continue
            n = int(m.group(1))
            if n not in found or EXTENSIONS.index(ext) < EXTENSIONS.index(found[n].suffix.lower().lstrip(".")):
                found[n] = p
        if not found:
            raise DatasetError(f"no MCL-JCV source videos (videoSRCnn_1920x1080_FPS.yuv or videoSRCnn.mp4) under {root}; {HOW_TO_GET}")
        check_missing(self, root, [_video_id(n) for n in range(1, NUM_SOURCES + 1) if n not in found], NUM_SOURCES,
                      self.allow_missing, "results of a partial set are not comparable to the model card")
        return [VideoRef(id=_video_id(n), path=str(p), meta={"source": n}) for n, p in sorted(found.items())]


def _video_id(n: int) -> str:
    return f"videoSRC{n:02d}"
