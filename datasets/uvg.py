"""UVG: the 7 classic 1920x1080 8-bit YUV 4:2:0 120 fps sequences, from a local ``root``.

Files are found by their published names anywhere under ``root`` (see
:data:`vidtok_bench.catalog.CATALOG`); size and rate come from the ``*_1920x1080_120fps_*``
names. Ids are the sequence names (Beauty, Bosphorus, ...). A file whose size is not the
published frame count fails alone (an incomplete download would otherwise be evaluated on
fewer frames); absent sequences stop the run unless ``allow_missing=true``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from vidtok_bench.catalog import entry
from vidtok_bench.data import Clip, VideoRef
from vidtok_bench.errors import DatasetError, VideoError
from vidtok_bench.registry import register_dataset

from ._common import FileDataset, check_bool, check_missing


@register_dataset("uvg")
class UvgDataset(FileDataset):
    def __init__(self, name: str | None = None, root: str | None = None, allow_missing: bool = False, **kw: Any):
        self.catalog = entry("uvg")
        if root is None or str(root) in ("", "???"):
            raise DatasetError(f"uvg needs dataset.root=DIR with the UVG sources; {self.catalog.how_to_get}")
        super().__init__(name=name, root=root, **kw)
        self.allow_missing = check_bool(self.name, "allow_missing", allow_missing)

    def videos(self) -> list[VideoRef]:
        if not self.root.is_dir():
            raise DatasetError(f"UVG root {self.root} does not exist or is not a directory; {self.catalog.how_to_get}")
        found = self.catalog.locate(self.root)
        expected = self.catalog.videos
        check_missing(self, self.root, [v.name for v in expected if v.name not in found], len(expected),
                      self.allow_missing, self.catalog.how_to_get)
        return [VideoRef(id=v.name, path=str(found[v.name]), meta={"frames": v.frames, "size_bytes": v.size_bytes})
                for v in expected if v.name in found]

    def clips(self, video: VideoRef) -> Iterator[Clip]:
        assert video.path is not None
        want = video.meta.get("size_bytes")
        try:
            size = Path(video.path).stat().st_size
        except OSError as exc:
            raise VideoError(video.path, f"cannot read file ({exc.strerror or exc})") from None
        if want is not None and size != want:
            raise VideoError(video.path, f"{size} bytes, the published sequence is {want} bytes "
                                         f"({video.meta.get('frames')} frames): incomplete or another version")
        yield from super().clips(video)
