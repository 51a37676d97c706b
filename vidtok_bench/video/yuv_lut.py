"""8-bit YUV 4:2:0 -> RGB on any device, bit-identical to the CPU conversion it replaces.

Why: on a GPU host FFmpeg's RGB conversion (swscale) costs ~3 ms of CPU per 1080p frame, several times
the frame's threaded decode, so it, not decoding, capped the data path. Converting on the GPU must not
change a single value: the CPU path's frames are the reference every number was measured on.

How: with nearest-neighbour chroma (each chroma sample serves its 2x2 luma block, what swscale's unscaled
yuv420p -> rgb24 converter and :func:`~.yuv.yuv420_to_rgb` do) an output pixel is a function of its
(Y, Cb, Cr) bytes alone. :class:`Yuv420Lut` tabulates that function by running *the CPU converter
itself* over frames that hold all 2^24 combinations, twice, at two different positions per combination
(a converter whose result depends on where a pixel sits, e.g. a SIMD body with a scalar tail that rounds
otherwise, fails that check), and :func:`lut_for` then checks it against the converter on a real frame.
A table that fails either check is not used; the frames then take the CPU conversion. The table is
48 MB (one byte per channel per combination), built once per source layout (format, size, colour matrix
and range) in ~1 s and cached with its verdict.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable

import numpy as np
import torch

#: a converter under test: (Y (H, W), Cb (H/2, W/2), Cr (H/2, W/2)) uint8 planes -> uint8 RGB (H, W, 3)
Converter = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

COMBINATIONS = 1 << 24
#: chroma blocks (4 luma values each) the table needs: 256 Cb x 256 Cr x 64 blocks of 4 luma values
BLOCKS = COMBINATIONS // 4
#: blocks per synthetic frame (bounds the build's memory: ~4M pixels, 12 MB of RGB, per conversion)
CHUNK_BLOCKS = 1 << 20


def packed_size(height: int, width: int) -> int:
    """Bytes of one frame packed as Y, Cb, Cr planes without padding (even height and width)."""
    return height * width + 2 * (height // 2) * (width // 2)


def _synthetic(first: int, rows: int, cw: int, shift: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Planes of ``rows`` x ``cw`` chroma blocks holding blocks ``first + shift ...`` (mod BLOCKS), and their numbers.

    Block k holds Cb = k >> 14, Cr = (k >> 6) & 255 and luma 4 * (k & 63) + (0, 1, 2, 3) in raster order
    over its 2x2 pixels, so the table index ``Cb << 16 | Cr << 8 | Y`` of block k's pixel j is 4k + j.
    """
    k = (np.arange(first, first + rows * cw, dtype=np.int64) + shift) % BLOCKS
    yb = ((k & 63) << 2).astype(np.uint8).reshape(rows, 1, cw, 1)
    y = (yb + np.array([[0, 1], [2, 3]], np.uint8).reshape(1, 2, 1, 2)).reshape(2 * rows, 2 * cw)
    cb = (k >> 14).astype(np.uint8).reshape(rows, cw)
    cr = ((k >> 6) & 255).astype(np.uint8).reshape(rows, cw)
    return y, cb, cr, k


def _tabulate(convert: Converter, width: int, shift: int) -> np.ndarray:
    """The (2^24, 3) table from synthetic frames ``width`` pixels wide, blocks placed ``shift`` blocks on."""
    cw = width // 2
    rows = max(1, CHUNK_BLOCKS // cw)
    lut = np.empty((COMBINATIONS, 3), np.uint8)
    for first in range(0, BLOCKS, rows * cw):
        n = min(rows, -(-(BLOCKS - first) // cw))  # the last frame may be shorter
        y, cb, cr, k = _synthetic(first, n, cw, shift)
        rgb = np.asarray(convert(y, cb, cr))
        if rgb.shape != (2 * n, 2 * cw, 3) or rgb.dtype != np.uint8:
            raise ValueError(f"the converter returned {rgb.dtype} {rgb.shape}, expected uint8 {(2 * n, 2 * cw, 3)}")
        blocks = rgb.reshape(n, 2, cw, 2, 3).transpose(0, 2, 1, 3, 4).reshape(n * cw, 4, 3)
        keep = (np.arange(first, first + n * cw) < BLOCKS)  # positions past the last block (last frame) are ignored
        lut.reshape(BLOCKS, 4, 3)[k[keep]] = blocks[keep]
    return lut


class Yuv420Lut:
    """The exact (Cb, Cr, Y) -> RGB table of one CPU converter, applied to packed planes on any device."""

    def __init__(self, table: np.ndarray):
        if table.shape != (COMBINATIONS, 3) or table.dtype != np.uint8:
            raise ValueError(f"a YUV -> RGB table is uint8 ({COMBINATIONS}, 3), got {table.dtype} {table.shape}")
        self.table = torch.from_numpy(table)
        self._on: dict[torch.device, torch.Tensor] = {}
        self._lock = threading.Lock()

    @classmethod
    def build(cls, convert: Converter, width: int) -> "Yuv420Lut | None":
        """Tabulate ``convert`` on frames ``width`` pixels wide; None when a pixel's result depends on its position."""
        if width < 2 or width % 2:
            return None
        first = _tabulate(convert, width, 0)
        # every combination a second time, at another column and row (shifted by a prime number of blocks)
        if not np.array_equal(first, _tabulate(convert, width, 1_000_003)):
            return None
        return cls(first)

    def table_on(self, device: torch.device) -> torch.Tensor:
        """The table on ``device`` (copied there once)."""
        device = torch.device(device)
        if device.type == "cpu":
            return self.table
        with self._lock:
            if device not in self._on:
                self._on[device] = self.table.to(device)
            return self._on[device]

    def to_rgb(self, packed: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """uint8 (T, N) frames packed as Y, Cb, Cr planes (:func:`packed_size`) -> uint8 (T, H, W, 3), on their device."""
        t = packed.shape[0]
        hw, ch, cw = height * width, height // 2, width // 2
        if packed.dtype != torch.uint8 or packed.dim() != 2 or packed.shape[1] != packed_size(height, width):
            raise ValueError(f"packed YUV 4:2:0 frames of {width}x{height} are uint8 (T, {packed_size(height, width)}), "
                             f"got {packed.dtype} {tuple(packed.shape)}")
        y = packed[:, :hw].view(t, height, width)

        def up(plane: torch.Tensor) -> torch.Tensor:  # each chroma sample over its 2x2 block, as int32
            p = plane.view(t, ch, 1, cw, 1).expand(t, ch, 2, cw, 2).reshape(t, height, width)
            return p.to(torch.int32)

        idx = up(packed[:, hw : hw + ch * cw]) << 16
        idx |= up(packed[:, hw + ch * cw :]) << 8
        idx |= y.to(torch.int32)
        return self.table_on(packed.device).index_select(0, idx.view(-1)).view(t, height, width, 3)


def matches(lut: Yuv420Lut, planes: tuple[np.ndarray, np.ndarray, np.ndarray], rgb: np.ndarray) -> bool:
    """Whether ``lut`` turns one real frame's planes into exactly ``rgb`` (the converter's own output)."""
    y = planes[0]
    h, w = y.shape
    got = lut.to_rgb(torch.from_numpy(pack(planes)).unsqueeze(0), h, w)[0]
    return bool(np.array_equal(got.numpy(), rgb))


def pack(planes: tuple[np.ndarray, np.ndarray, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Y, Cb, Cr (possibly strided) planes -> one contiguous uint8 row of :func:`packed_size` bytes (into ``out``)."""
    y, cb, cr = planes
    h, w = y.shape
    n = packed_size(h, w)
    out = np.empty(n, np.uint8) if out is None else out
    hw, c = h * w, (h // 2) * (w // 2)
    np.copyto(out[:hw].reshape(h, w), y)
    np.copyto(out[hw : hw + c].reshape(h // 2, w // 2), cb)
    np.copyto(out[hw + c :].reshape(h // 2, w // 2), cr)
    return out


_CACHE: "OrderedDict[Hashable, Yuv420Lut | None]" = OrderedDict()
_CACHE_LOCK = threading.Lock()
#: tables kept (48 MB each): a dataset's videos share a few layouts
CACHE_SIZE = 2


def lut_for(key: Hashable, convert: Converter, width: int, check: Callable[[Yuv420Lut], bool]) -> Yuv420Lut | None:
    """The table for a converter layout ``key``, built on first use and accepted only if ``check`` (a real
    frame converted both ways) passes; None when it cannot be exact. Later videos of the layout reuse the
    verdict: building takes ~1 s, checking a 1080p frame ~15 ms, a short clip's whole decode ~100 ms."""
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        lut = Yuv420Lut.build(convert, width)  # under the lock: two videos of one layout build it once
        if lut is not None and not check(lut):
            lut = None
        _CACHE[key] = lut
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return lut
