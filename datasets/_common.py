"""Shared base of the file-backed dataset adapters (folder, mcl_jcv): options and per-video decoding."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from vidtok_bench.data import Clip, Dataset, VideoRef
from vidtok_bench.errors import ConfigError, check_choice
from vidtok_bench.video.decode import DEFAULT_DECODE_TIMEOUT_S, decode_clips, default_workers
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
        self.workers = check_positive(self.name, "workers", workers) or default_workers()
        self.decode_timeout_s = check_positive(self.name, "decode_timeout_s", decode_timeout_s, float)

    def clips(self, video: VideoRef) -> Iterator[Clip]:
        assert video.path is not None
        yuv: dict[str, Any] = dict(
            width=self.width, height=self.height, source_fps=self.source_fps, matrix=self.yuv_matrix,
        ) if video.path.lower().endswith(".yuv") else {}
        return decode_clips(video.path, self.preprocess, video.id, self.workers, self.decode_timeout_s, **yuv)

    def info(self) -> dict[str, Any]:
        return {**super().info(), "root": str(self.root)}
