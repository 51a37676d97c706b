"""Raw 8-bit YUV 4:2:0 (planar, I420) files, read frame by frame with numpy.

Raw files carry no header: width, height and frame rate come from a name of the form
``*_WIDTHxHEIGHT_FPS.yuv`` (the MCL-JCV and UVG convention, e.g.
``videoSRC01_1920x1080_30.yuv``) or are given explicitly.

Colour: MCL-JCV's sources are 1080p HD material, i.e. ITU-R BT.709 primaries/matrix in
limited ("TV") range, Y in [16, 235] and Cb/Cr in [16, 240]; UVG is also BT.709 limited
range. So BT.709 limited range is the default matrix; BT.601 can be chosen for SD material.
This is the conversion FFmpeg applies to a BT.709-tagged yuv420p stream, which is what an
mp4 conversion of the same file decodes to in ``decode.py``. Chroma is upsampled by
repeating each sample over its 2x2 block (no interpolation).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import ConfigError, VideoError, check_choice

_NAME = re.compile(r"_(\d+)x(\d+)_(\d+(?:\.\d+)?)(?:fps)?(?:_[^/\\]*)?\.yuv$", re.IGNORECASE)

_DEEP = re.compile(r"(?<![0-9])(10|12|16) ?-?b(?:it)?(?![a-z0-9])", re.IGNORECASE)

#: (Kr, Kb) of the luma equation
MATRICES = {"bt709": (0.2126, 0.0722), "bt601": (0.299, 0.114)}


@dataclass(frozen=True)
class YuvInfo:
    width: int
    height: int
    fps: Fraction
    num_frames: int

    @property
    def frame_bytes(self) -> int:
        return yuv420_frame_bytes(self.width, self.height)


def yuv420_frame_bytes(width: int, height: int) -> int:
    """Bytes of one 8-bit 4:2:0 frame (chroma planes of ceil(w/2) x ceil(h/2))."""
    return width * height + 2 * ((width + 1) // 2) * ((height + 1) // 2)


def parse_yuv_name(name: str) -> tuple[int, int, Fraction] | None:
    """(width, height, fps) from ``*_WIDTHxHEIGHT_FPS.yuv``, or None when the name has no such part."""
    m = _NAME.search(os.path.basename(name))
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), Fraction(m.group(3))


def probe_yuv(
    path: str | Path, width: int | None = None, height: int | None = None, source_fps: float | None = None
) -> YuvInfo:
    """Size, source frame rate and frame count of a raw file; explicit values override the name."""
    deep = _DEEP.search(os.path.basename(str(path)))
    if deep:
        raise VideoError(str(path), f"{deep.group(1)}-bit raw YUV is not supported (8-bit 4:2:0 only)")
    parsed = parse_yuv_name(str(path))
    if width is None or height is None:
        if parsed is None:
            raise VideoError(
                str(path), "raw YUV size unknown: name it *_WIDTHxHEIGHT_FPS.yuv or set dataset.width/height/source_fps"
            )
        width, height = parsed[0], parsed[1]
    fps = source_fps if source_fps is not None else (parsed[2] if parsed is not None else None)
    if fps is None:
        raise VideoError(str(path), "raw YUV frame rate unknown: name it *_WIDTHxHEIGHT_FPS.yuv or set dataset.source_fps")
    if width <= 0 or height <= 0 or float(fps) <= 0:
        raise ConfigError(f"{path}: raw YUV size {width}x{height} at {fps} fps is not valid")
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise VideoError(str(path), f"cannot read file ({exc.strerror or exc})") from None
    fb = yuv420_frame_bytes(width, height)
    if size % fb:
        raise VideoError(
            str(path),
            f"file size {size} is not a multiple of the {width}x{height} YUV 4:2:0 frame size {fb} "
            "(wrong size, not 8-bit 4:2:0, or truncated)",
        )
    fr = fps if isinstance(fps, Fraction) else Fraction(str(fps))
    return YuvInfo(int(width), int(height), fr, size // fb)


def yuv420_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, matrix: str = "bt709") -> np.ndarray:
    """Limited-range 8-bit planes -> uint8 RGB (H, W, 3), rounded and clipped."""
    check_choice("dataset.yuv_matrix", matrix, MATRICES)
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    h, w = y.shape
    yf = (y.astype(np.float32) - 16.0) * np.float32(255.0 / 219.0)
    cb = (u.astype(np.float32) - 128.0) * np.float32(255.0 / 224.0)
    cr = (v.astype(np.float32) - 128.0) * np.float32(255.0 / 224.0)
    cb = cb.repeat(2, axis=0).repeat(2, axis=1)[:h, :w]
    cr = cr.repeat(2, axis=0).repeat(2, axis=1)[:h, :w]
    out = np.empty((h, w, 3), np.float32)
    out[..., 0] = yf + np.float32(2 * (1 - kr)) * cr
    out[..., 2] = yf + np.float32(2 * (1 - kb)) * cb
    out[..., 1] = yf - np.float32(2 * kb * (1 - kb) / kg) * cb - np.float32(2 * kr * (1 - kr) / kg) * cr
    np.rint(out, out=out)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def rgb_to_yuv420(rgb: np.ndarray, matrix: str = "bt709") -> bytes:
    """uint8 RGB (H, W, 3) with even H, W -> one limited-range I420 frame (2x2 mean chroma).

    The inverse of :func:`yuv420_to_rgb` up to chroma subsampling; used to write test files.
    """
    kr, kb = MATRICES[matrix]
    kg = 1.0 - kr - kb
    x = rgb.astype(np.float64) / 255.0
    yy = kr * x[..., 0] + kg * x[..., 1] + kb * x[..., 2]
    pb = (x[..., 2] - yy) / (2 * (1 - kb))
    pr = (x[..., 0] - yy) / (2 * (1 - kr))
    h, w = yy.shape
    pb = pb.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    pr = pr.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    q = lambda a, off, scale: np.clip(np.rint(off + scale * a), 0, 255).astype(np.uint8)  # noqa: E731
    return q(yy, 16, 219).tobytes() + q(pb, 128, 224).tobytes() + q(pr, 128, 224).tobytes()


def iter_yuv_planes(path: str | Path, info: YuvInfo) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each frame's (Y, U, V) uint8 planes, one frame at a time (only one raw frame is in memory)."""
    w, h = info.width, info.height
    cw, ch = (w + 1) // 2, (h + 1) // 2
    fb = info.frame_bytes
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise VideoError(str(path), f"cannot read file ({exc.strerror or exc})") from None
    with f:
        for i in range(info.num_frames):
            buf = f.read(fb)
            if len(buf) != fb:
                raise VideoError(str(path), f"file ended inside frame {i} (truncated while reading)")
            a = np.frombuffer(buf, np.uint8)
            yield a[: w * h].reshape(h, w), a[w * h : w * h + cw * ch].reshape(ch, cw), a[w * h + cw * ch :].reshape(ch, cw)


def iter_yuv_frames(path: str | Path, info: YuvInfo, matrix: str = "bt709") -> Iterator[np.ndarray]:
    """uint8 RGB frames, one at a time (only one raw frame is in memory)."""
    for y, u, v in iter_yuv_planes(path, info):
        yield yuv420_to_rgb(y, u, v, matrix)
