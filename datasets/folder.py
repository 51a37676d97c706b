"""Any directory of videos (recursive, sorted), or a CSV/JSON list of video files.

``root`` is a directory (every file whose extension is in ``extensions``, hidden files and
folders skipped, sorted by relative path) or a list file:

* CSV: one video per row; the column named ``path`` (else the first column) holds the file,
  an optional ``id`` column its id; a header row is recognised by a ``path`` cell (a first
  row of column names without one is refused, never read as files);
* JSON: a list of paths, a list of ``{"path": ..., "id": ...}`` objects, or ``{"videos": [...]}``.

Relative paths are taken from the list file's folder. A video's id is its path relative to
the root (or the list's folder), so results stay comparable across machines. Listed files that
are missing are kept and fail when read, so they are recorded as failed, never dropped.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vidtok_bench.data import VideoRef, walk_files
from vidtok_bench.errors import ConfigError, DatasetError
from vidtok_bench.registry import register_dataset

from ._common import FileDataset, read_list

VIDEO_EXTENSIONS = (
    "mp4", "mkv", "avi", "mov", "webm", "m4v", "mpg", "mpeg", "ts", "m2ts", "flv", "wmv", "ogv", "3gp",
    "y4m", "yuv", "gif",
)


@register_dataset("folder")
class FolderDataset(FileDataset):
    def __init__(self, name: str | None = None, root: str | None = None, extensions: list[str] | str | None = None, **kw: Any):
        super().__init__(name=name, root=root, **kw)
        if extensions is None:
            exts = VIDEO_EXTENSIONS
        elif isinstance(extensions, str):
            exts = tuple(e for e in extensions.replace(",", " ").split())
        else:
            exts = tuple(str(e) for e in extensions)
        self.extensions = tuple(sorted({e.lower().lstrip(".") for e in exts if e}))
        if not self.extensions:
            raise ConfigError(f"dataset '{self.name}': extensions is empty")

    def videos(self) -> list[VideoRef]:
        root = self.root
        if not root.exists():
            raise DatasetError(f"dataset root {root} does not exist")
        if root.is_dir():
            return self._scan(root)
        suffix = root.suffix.lower()
        if suffix in (".csv", ".json"):
            entries = [(row["path"], None if row.get("id") is None else str(row["id"])) for _, row in read_list(root)]
            return self._finish(entries, root)
        if suffix.lstrip(".") in self.extensions:
            return [VideoRef(id=root.name, path=str(root))]
        raise DatasetError(f"dataset root {root} is neither a directory, a .csv/.json list nor a video file")

    def _scan(self, root: Path) -> list[VideoRef]:
        out = []
        for p in walk_files(root):
            if p.suffix.lower().lstrip(".") in self.extensions:
                out.append(VideoRef(id=p.relative_to(root).as_posix(), path=str(p)))
        if not out:
            raise DatasetError(f"no video files ({', '.join(self.extensions)}) found under {root}")
        return sorted(out, key=lambda v: v.id)

    def _finish(self, entries: list[tuple[str, str | None]], listfile: Path) -> list[VideoRef]:
        if not entries:
            raise DatasetError(f"video list {listfile} lists no videos")
        base = listfile.parent
        out, seen = [], set()
        for p, vid in entries:
            full = Path(p).expanduser()
            if not full.is_absolute():
                full = base / full
            if vid is None:
                # lexical (symlinks kept): a linked file is named where the list puts it
                rel = os.path.relpath(os.path.abspath(full), os.path.abspath(base))
                vid = Path(rel).as_posix() if not rel.startswith("..") else full.as_posix()
            if vid in seen:
                raise DatasetError(f"video list {listfile}: video id '{vid}' appears twice")
            seen.add(vid)
            out.append(VideoRef(id=vid, path=str(full)))
        return out  # the list's own order

    def info(self) -> dict[str, Any]:
        return {**super().info(), "extensions": list(self.extensions)}
