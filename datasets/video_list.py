"""A fixed list of videos and source-frame ranges under a root (TokenBench-style, FVD clip lists).

``list`` is a CSV (``path,start,end`` with an optional header that may add ``id``) or JSON
(objects with ``path``/``start``/``end``/``id``, or ``[path, start, end]`` arrays) file.
``path`` is relative to ``root`` (default: the list's folder). ``start``/``end`` are source
frame numbers, 0-based, ``end`` exclusive; empty means the first/last frame. Sampling, resize
and clips apply within the range, and clips record the true source frame numbers.

A video's id is its ``id``, else its path (``path@start-end`` when the same file is listed
with several ranges). Listed files absent from the root stop the run with a DatasetError
naming them, unless ``allow_missing=true``: then the run goes on without them and
``info()["missing"]`` records them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vidtok_bench.data import VideoRef
from vidtok_bench.errors import ConfigError, DatasetError, check_path
from vidtok_bench.registry import register_dataset

from ._common import FileDataset, check_bool, check_missing, read_list


def _frame_number(v: Any, where: str) -> int | None:
    if v is None or v == "":
        return None
    try:
        n = int(v)
        ok = not isinstance(v, bool) and float(v) == n and n >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise DatasetError(f"{where}: frame number {v!r} must be an integer >= 0")
    return n


@register_dataset("video_list")
class VideoListDataset(FileDataset):
    def __init__(
        self,
        name: str | None = None,
        list: str | None = None,  # noqa: A002 - the config key users write
        root: str | None = None,
        allow_missing: bool = False,
        **kw: Any,
    ):
        if list is None or str(list) in ("", "???"):
            raise ConfigError(f"dataset '{name or self.plugin_name}' needs dataset.list=FILE (CSV/JSON of path,start,end)")
        self.list_path = Path(str(list)).expanduser()
        if root is None or str(root) in ("", "???"):
            root = str(self.list_path.parent)
        super().__init__(name=name, root=root, **kw)
        self.allow_missing = check_bool(self.name, "allow_missing", allow_missing)

    def entries(self) -> list[tuple[str, str, int, int | None]]:
        """(id, path, start, end) of every listed video, in the list's order."""
        rows = read_list(check_path(self.list_path, "video list", DatasetError), ("path", "start", "end"))
        if not rows:
            raise DatasetError(f"video list {self.list_path} lists no videos")
        out = []
        for where, row in rows:
            w = f"video list {self.list_path}, {where}"
            start = _frame_number(row.get("start"), w) or 0
            end = _frame_number(row.get("end"), w)
            if end is not None and end <= start:
                raise DatasetError(f"{w}: end {end} must be after start {start} (end is exclusive)")
            out.append((row.get("id"), Path(str(row["path"])).as_posix(), start, end))
        counts: dict[str, int] = {}
        for _, p, _, _ in out:
            counts[p] = counts.get(p, 0) + 1
        named = [(str(i) if i is not None else p if counts[p] == 1 else f"{p}@{s}-{'' if e is None else e}", p, s, e)
                 for i, p, s, e in out]
        seen: set[str] = set()
        for vid, *_ in named:
            if vid in seen:
                raise DatasetError(f"video list {self.list_path}: video id '{vid}' appears twice")
            seen.add(vid)
        return named

    def videos(self) -> list[VideoRef]:
        if not self.root.is_dir():
            raise DatasetError(f"dataset '{self.name}': root {self.root} does not exist or is not a directory")
        entries = self.entries()
        files = {p for _, p, _, _ in entries}
        missing = {p for p in files if not (self.root / p).is_file()}
        check_missing(self, self.root, sorted(missing), len(files), self.allow_missing)
        return [
            VideoRef(id=vid, path=str(self.root / p), meta={"frame_range": (s, e), "path": p})
            for vid, p, s, e in entries if p not in missing
        ]

    def info(self) -> dict[str, Any]:
        return {**super().info(), "list": str(self.list_path)}
