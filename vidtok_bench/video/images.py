"""A folder of numbered PNG/JPEG frames read as a video, one frame at a time (PIL).

Sets such as DAVIS 2017 ship videos as ``00000.jpg, 00001.jpg, ...``. Frames are ordered by
a natural sort of their names and must be numbered without gaps (the number is the last
run of digits in the name): a missing frame would silently shift every later frame in time.
Only the file list is read up front; each frame's header is checked for its size as the
stream reaches it and pixels are decoded only for frames that sampling keeps, so a sequence
is never held in memory at full resolution.
"""
from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import VideoError
from .decode import FrameSource

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg")
_DIGITS = re.compile(r"(\d+)")
#: PIL modes that hold 8-bit samples and convert to RGB without loss of range
_EIGHT_BIT_MODES = ("RGB", "RGBA", "RGBX", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1")


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``f2`` before ``f10``."""
    return [int(p) if p.isdigit() else p.lower() for p in _DIGITS.split(name)]


def list_frames(folder: str | Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[Path]:
    """The sequence's frame files in order (VideoError for no frames, a gap or a duplicate number)."""
    folder = Path(folder)
    exts = {e.lower().lstrip(".") for e in extensions}
    try:
        files = [p for p in folder.iterdir() if not p.name.startswith(".") and p.suffix.lower().lstrip(".") in exts and p.is_file()]
    except OSError as exc:
        raise VideoError(str(folder), f"cannot list the folder ({exc.strerror or exc})") from None
    if not files:
        raise VideoError(str(folder), f"no frames ({'/'.join(sorted(exts))} files) in this folder")
    files.sort(key=lambda p: natural_key(p.name))
    numbers = []
    for p in files:
        digits = _DIGITS.findall(p.stem)
        if not digits:
            raise VideoError(str(folder), f"frame file {p.name} has no frame number in its name")
        numbers.append(int(digits[-1]))
    for k in range(1, len(files)):
        if numbers[k] == numbers[k - 1]:
            raise VideoError(str(folder), f"two files for frame {numbers[k]}: {files[k - 1].name} and {files[k].name}")
        if numbers[k] != numbers[k - 1] + 1:
            what = f"missing frame {numbers[k - 1] + 1}" if numbers[k] > numbers[k - 1] else "frame numbers out of name order"
            raise VideoError(str(folder), f"{what}: numbering goes from {files[k - 1].name} to {files[k].name}")
    return files


def _open_error(folder: Path, p: Path, exc: BaseException) -> VideoError:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return VideoError(str(folder), f"frame {p.name}: unreadable image ({msg})")


def image_size(folder: Path, p: Path) -> tuple[int, int]:
    """(width, height) from the file's header only."""
    try:
        with Image.open(p) as im:
            return im.size
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise _open_error(folder, p, exc) from None


def read_rgb(folder: Path, p: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB of one frame file (VideoError naming the file when it cannot be decoded)."""
    try:
        with Image.open(p) as im:
            if im.mode not in _EIGHT_BIT_MODES:
                raise VideoError(str(folder), f"frame {p.name}: image mode {im.mode} is not 8-bit (8-bit RGB/grey/palette only)")
            return np.asarray(im.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise _open_error(folder, p, exc) from None


def open_image_sequence(folder: str | Path, fps: float | Fraction, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> FrameSource:
    """A numbered-frame folder as a :class:`FrameSource` at ``fps`` (frames carry no rate of their own)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoError(str(folder), "frame folder not found" if not folder.exists() else "not a folder")
    files = list_frames(folder, extensions)
    width, height = image_size(folder, files[0])
    rate = fps if isinstance(fps, Fraction) else Fraction(str(fps))

    def frames() -> Iterator[tuple[Fraction, Any]]:
        for i, p in enumerate(files):
            size = image_size(folder, p)  # a header read: catches mixed sizes even in frames sampling skips
            if size != (width, height):
                raise VideoError(
                    str(folder), f"mixed frame sizes: {p.name} is {size[0]}x{size[1]}, {files[0].name} is {width}x{height}"
                )
            yield Fraction(i) / rate, p

    return FrameSource(str(folder), width, height, rate, frames, lambda p: read_rgb(folder, p), len(files))
