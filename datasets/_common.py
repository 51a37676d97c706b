"""Shared base of the file-backed dataset adapters (folder, mcl_jcv): options and per-video decoding."""
from __future__ import annotations

import csv
import json
import re
import warnings
from pathlib import Path
from typing import Any, Iterator

from vidtok_bench.data import Clip, Dataset, VideoRef
from vidtok_bench.errors import ConfigError, DatasetError, check_choice
from vidtok_bench.video.decode import DEFAULT_DECODE_TIMEOUT_S, decode_clips
from vidtok_bench.video.yuv import MATRICES


def check_positive(name: str, key: str, value: Any, kind: type = int) -> Any:
    """None, or a positive number of the given kind (a one-line ConfigError otherwise)."""
    if value is None:
        return None
    try:
        ok = kind(value) > 0 and (kind is not int or float(value) == int(value))
    except (TypeError, ValueError):
        ok = False
    if not ok or isinstance(value, bool):
        raise ConfigError(f"dataset '{name}': {key}={value!r} must be a positive {'integer' if kind is int else 'number'}")
    return kind(value)


#: a CSV cell that reads as a column name (no path separator or extension, not starting with a digit); a first
#: row of two or more such cells is a header (one cell could be an extensionless video name)
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ -]*")


def read_list(path: Path, columns: tuple[str, ...] = ("path",)) -> list[tuple[str, dict[str, Any]]]:
    """Entries of a CSV/JSON video list as ``(where, {column: value})``; ``where`` names the row for messages.

    CSV: a header row is recognised by a ``path`` cell (its cells name the columns), otherwise
    cells are ``columns`` in order; empty cells are None. A first row of two or more names (no
    ``/`` or ``.``, not starting with a digit, e.g. ``video,label``) is a header without ``path``: a
    DatasetError naming its columns, never its names read as files. A UTF-8 byte-order mark is ignored. JSON: a list (or ``{"videos": [...]}``)
    of path strings, of objects with ``path``, or of arrays of ``columns`` in order. Every
    entry has a non-empty ``path`` string (DatasetError otherwise).
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # spreadsheets save CSV with a byte-order mark
        if path.suffix.lower() == ".json":
            data: Any = json.loads(text)
        else:
            data = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read video list {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"cannot read video list {path}: {str(exc).splitlines()[0]}") from None
    out: list[tuple[str, dict[str, Any]]] = []
    if path.suffix.lower() != ".json":
        cells = [c.strip() for c in data[0]] if data else []
        header = [c.lower() for c in cells]
        if "path" not in header and len(cells) > 1 and all(_COLUMN_NAME.fullmatch(c) for c in cells):
            raise DatasetError(f"video list {path}: no 'path' column (columns: {', '.join(cells)})")
        names, first = (header, 2) if "path" in header else (list(columns), 1)
        for n, r in enumerate(data[first - 1 :], first):
            row = {k: (c.strip() or None) for k, c in zip(names, r)}
            if not row.get("path"):
                raise DatasetError(f"video list {path}, row {n}: no path")
            out.append((f"row {n}", row))
        return out
    if isinstance(data, dict):
        data = data.get("videos")
    if not isinstance(data, list):
        raise DatasetError(f"video list {path} must be a JSON list of paths or of {{\"path\": ...}} objects")
    for n, item in enumerate(data):
        if isinstance(item, str):
            item = {"path": item}
        elif isinstance(item, list):
            item = dict(zip(columns, item))
        if not isinstance(item, dict) or not isinstance(item.get("path"), str) or not item["path"]:
            raise DatasetError(f"video list {path}, entry {n}: expected a path string or an object with 'path'")
        out.append((f"entry {n}", item))
    return out


def check_missing(dataset: Dataset, root: Any, missing: list[str], expected: int, allow_missing: bool, hint: str = "") -> None:
    """Named sets must be complete to be comparable: listed videos absent from the root stop the
    run (DatasetError with their count and names) unless ``allow_missing``; then they are
    recorded in ``dataset.missing`` (``info()["missing"]``) and a warning says so. None present
    stops the run either way: there is nothing to evaluate."""
    dataset.missing = list(missing)
    if not missing:
        return
    names = ", ".join(missing[:10]) + (f", ... ({len(missing) - 10} more)" if len(missing) > 10 else "")
    if len(missing) >= expected:
        raise DatasetError(f"dataset '{dataset.name}': none of the {expected} listed videos is under {root}: {names}"
                           f"{'; ' + hint if hint else ''}")
    msg = f"dataset '{dataset.name}': {len(missing)} of {expected} listed videos missing under {root}: {names}"
    if not allow_missing:
        raise DatasetError(f"{msg}; set dataset.allow_missing=true to run without them{'; ' + hint if hint else ''}")
    warnings.warn(f"{msg}; running without them (allow_missing=true), results are not comparable to the full set", stacklevel=3)


def check_bool(name: str, key: str, value: Any) -> bool:
    """A yes/no option from YAML or the command line (a one-line ConfigError otherwise)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"dataset '{name}': {key}={value!r} must be true or false")


class FileDataset(Dataset):
    """Videos read from files; raw ``.yuv`` files take size/fps from their names or from
    ``width``/``height``/``source_fps``, converted with ``yuv_matrix`` (bt709 default).

    ``decode_timeout_s`` (default 600, None: no limit) fails a video that spends longer
    decoding, so one pathological file cannot stall a whole run.
    """

    def __init__(
        self,
        name: str | None = None,
        root: str | None = None,
        width: int | None = None,
        height: int | None = None,
        source_fps: float | None = None,
        yuv_matrix: str | None = None,
        workers: int | None = None,
        decode_timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S,
        **preprocess: Any,
    ):
        super().__init__(name=name, **preprocess)
        if root is None or str(root) in ("", "???"):
            raise ConfigError(f"dataset '{self.name}' needs a root: set dataset.root=DIR")
        self.root = Path(str(root)).expanduser()
        self.width = check_positive(self.name, "width", width)
        self.height = check_positive(self.name, "height", height)
        self.source_fps = check_positive(self.name, "source_fps", source_fps, float)
        self.yuv_matrix = yuv_matrix or "bt709"
        check_choice(f"dataset '{self.name}': yuv_matrix", self.yuv_matrix, MATRICES)
        # None: decided per video by the clips' kind (video.decode.default_workers)
        self.workers = check_positive(self.name, "workers", workers)
        self.decode_timeout_s = check_positive(self.name, "decode_timeout_s", decode_timeout_s, float)

    def clips(self, video: VideoRef) -> Iterator[Clip]:
        """Decoded clips; ``video.meta["frame_range"]`` = (start, end) limits the source frames."""
        assert video.path is not None
        yuv: dict[str, Any] = dict(
            width=self.width, height=self.height, source_fps=self.source_fps, matrix=self.yuv_matrix,
        ) if video.path.lower().endswith(".yuv") else {}
        return decode_clips(video.path, self.preprocess, video.id, self.workers, video.meta.get("frame_range"),
                            timeout_s=self.decode_timeout_s, clip_frames=self.clip_frames, **yuv)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "root": str(self.root)}
