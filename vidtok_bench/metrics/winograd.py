"""3x3 convolutions (stride 1, padding 1) by Winograd's minimal filtering F(m x m, 3x3), for wide layers on CPUs.

Why: LPIPS-VGG is most of a CPU run's time, and its conv3-conv5 layers (256-512 channels) are plain fp32 3x3
convs that oneDNN's direct kernels already run near the cores' peak. F(m x m, 3x3) (Lavin & Gray, 2016) computes
each m x m output tile from an (m+2) x (m+2) input tile with (m+2)^2 channel GEMMs instead of 9 m^2 multiply-adds
per output channel pair: 2.25x fewer FLOPs for F(2x2, 3x3), 4x for F(4x4, 3x3), paid for with memory-bound tile
transforms, so it wins only where channels are many (a GEMM per tile position is then large) -- :data:`MIN_CHANNELS`.
The wide convs run F(4x4, 3x3) (:data:`TILE`); on the 2-core AMD EPYC box F(2x2) had run VGG's wide layers only
1.0-1.4x faster than oneDNN's direct kernels at 640x272, F(4x4) 1.2-1.5x.

Numbers: F(2x2, 3x3)'s transforms have coefficients 0 and +-1 (input, output) and 1/2 (filter, done once in
float64), so its float32 rounding stays within a few ulps of the sum of absolute products: on VGG-like layers
1.0-1.6e-7 of it, against 2.7-2.9e-7 for oneDNN's channels-last direct kernel. F(4x4, 3x3)'s coefficients reach 5
(input) and 8 (output), and its rounding 1.4-2.5e-6 of that sum on VGG-like layers (4.6e-6 at 128 channels); the
distances LPIPS computes from such features moved by 1e-7 relative (4e-9 absolute), four orders of magnitude inside
LPIPS's 0.002 tolerance (the tests check both variants against float64).

Memory: tiles are transformed one horizontal band at a time (:data:`BAND_BYTES` of transformed input) in two
buffers reused by every band, so the extra memory is ~2 bands, not (m+2)^2/m^2 times the layer's input. Inference
only (the transforms write into preallocated buffers, which autograd does not follow).
"""
from __future__ import annotations

import functools
import threading

import torch
import torch.nn as nn

#: input channels from which a 3x3 conv runs by Winograd on CPUs (VGG's layers at 640x272 on 2 AVX-512 cores, F(2x2)
#: on the Xeon box: 512 channels 1.5-1.7x faster, 256 1.15-1.6x, 128 no faster, 64 2x slower; F(4x4) on the EPYC
#: box: 256-512 1.2-1.5x, 128 within the spread, 64 1.5x slower, and LPIPS-VGG no faster from 128 channels on)
MIN_CHANNELS = 256
#: transformed input per band for F(2x2, 3x3) (16 tile positions x tiles x channels x 4 bytes); an F(4x4, 3x3) band
#: holds as many tiles (36/16 of the bytes): with a quarter of the tiles its GEMMs were too short (LPIPS-VGG 0.96x
#: of F(2x2)'s time at 4 MB, 0.85-0.87x with as many tiles, 0.91x at 16 MB)
BAND_BYTES = 4 << 20
#: output tile size of the convs :func:`swap_wide_convs` makes: F(4x4, 3x3)
TILE = 4

#: filter transforms G (alpha x 3) by output tile size: F(2x2, 3x3) (alpha 4) and F(4x4, 3x3) (alpha 6, points
#: 0, +-1, +-2 and infinity, Lavin & Gray's)
_G = {
    2: ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0)),
    4: ((1 / 4, 0.0, 0.0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6), (1 / 24, 1 / 12, 1 / 6),
        (1 / 24, -1 / 12, 1 / 6), (0.0, 0.0, 1.0)),
}


def filter_taps(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) conv weights -> their (9, C, K) taps: what a swapped conv holds (the weights' size)."""
    k, c = weight.shape[:2]
    return weight.detach().permute(2, 3, 1, 0).reshape(9, c, k).contiguous()


def _transform(tile: int, dtype: torch.dtype) -> torch.Tensor:
    """The (alpha^2, 9) matrix ``kron(G, G)`` that takes a conv's taps to ``G g G^T`` per tile position."""
    g = torch.tensor(_G[tile], dtype=torch.float64)
    return torch.kron(g, g).to(dtype)


def transform_filter(weight: torch.Tensor, tile: int = TILE) -> torch.Tensor:
    """(K, C, 3, 3) conv weights -> (alpha^2, C, K) float32 ``G g G^T`` per tile position for F(tile x tile, 3x3),
    computed in float64."""
    taps = filter_taps(weight).to("cpu", torch.float64)
    return (_transform(tile, torch.float64) @ taps.view(9, -1)).view(-1, *taps.shape[1:]).to(torch.float32)


_SCRATCH = threading.local()


def _scratch(device: torch.device, numel: int) -> torch.Tensor:
    """This thread's buffer of at least ``numel`` float32s on ``device`` (grown, never shrunk): where a swapped conv
    transforms its filters for the call (a thread runs one conv at a time)."""
    bufs = getattr(_SCRATCH, "bufs", None)
    if bufs is None:
        bufs = _SCRATCH.bufs = {}
    buf = bufs.get(device)
    if buf is None or buf.numel() < numel:
        with torch.inference_mode(False):  # a normal tensor: calls in and outside inference mode both write it
            buf = bufs[device] = torch.empty(numel, device=device)
    return buf[:numel]


#: input transforms B^T (alpha x alpha) and output transforms A^T (tile x alpha) by output tile size
_BT = {
    2: ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
    4: ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0),
        (0, 4, 0, -5, 0, 1)),
}
_AT = {
    2: ((1, 1, 1, 0), (0, 1, -1, -1)),
    4: ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)),
}


@functools.lru_cache(maxsize=None)
def _tile_matrices(tile: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``B^T`` and ``A^T`` in float32 on ``device``, made once (outside inference mode, so calls in and outside it
    can use them)."""
    with torch.inference_mode(False):
        return (torch.tensor(_BT[tile], dtype=torch.float32, device=device),
                torch.tensor(_AT[tile], dtype=torch.float32, device=device))


def conv3x3(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None = None, *,
            band_bytes: int = BAND_BYTES) -> torch.Tensor:
    """``F.conv2d(x, w, bias, padding=1)`` for (N, C, H, W) float32 ``x`` with ``u = transform_filter(w, tile)``
    (the tile size is read from ``u``: 16 positions F(2x2, 3x3), 36 F(4x4, 3x3)).

    Returns a channels-last (N, K, H, W) tensor (the layout oneDNN's next conv reads without a reorder).

    Each transform is a gather of the tiles' rows (or columns) into one buffer and one GEMM with the small matrix
    (B^T or A^T), not one elementwise op per coefficient row: ~6 large ops per band instead of ~170 small ones.
    With ``OMP_WAIT_POLICY=PASSIVE`` (what ``import vidtok_bench`` sets) every parallel op pays for waking the
    other threads, ~0.14 ms per op on the 2-core VM, which had cost LPIPS-VGG ~17% of its time."""
    n, c, h, w = x.shape
    k = u.shape[2]
    a = {16: 4, 36: 6}[u.shape[0]]  # input tile size alpha
    t = a - 2  # output tile size
    bt, at = _tile_matrices(t, x.device)
    th, tw = -(-h // t), -(-w // t)
    wp = t * tw + 2  # a band's padded width
    xh = x.permute(0, 2, 3, 1)  # NHWC: a view of a channels-last input
    out = x.new_empty(n, h, w, k)
    step = min(th, max(1, band_bytes // (16 * n * tw * max(c, k) * 4)))  # tiles per band: as F(2x2)'s at band_bytes
    # two buffers per call, reused by every band (few, large allocations, which glibc maps and gives back, instead
    # of a few per band): ``work`` in two halves that the steps write in turn, each over what the previous step
    # read and nothing later needs, and the products; no more memory than the elementwise transforms had taken
    src_len, rows_len = n * (t * step + 2) * wp * c, a * n * step * wp * c
    tiles_len, m_len = a * a * n * step * tw * c, a * a * n * step * tw * k
    x_len = max(src_len, rows_len, tiles_len, t * a * n * step * tw * k)  # band, row pass, transformed input, A^T m
    work = x.new_empty(x_len + max(rows_len, tiles_len, t * t * n * step * tw * k))  # gathered rows, columns, tiles
    half_x, half_y = work[:x_len], work[x_len:]
    m_buf = x.new_empty(m_len)
    for t0 in range(0, th, step):
        tb = min(th, t0 + step) - t0
        p = n * tb * tw
        # input rows lo ... lo + t*tb + 1, zero-padded by 1 on the left and up to whole tiles on the right and
        # past the last row (a copy of the band only: the layer's input is never copied whole)
        lo, rows = t * t0 - 1, t * tb + 2
        a0, a1 = max(lo, 0), min(lo + rows, h)
        src = half_x[: n * rows * wp * c].view(n, rows, wp, c)
        src[:, :, 0].zero_()
        src[:, :, w + 1:].zero_()
        src[:, : a0 - lo].zero_()
        src[:, a1 - lo:].zero_()
        src[:, a0 - lo: a1 - lo, 1: w + 1].copy_(xh[:, a0:a1])
        # B^T d B: row l of every tile row gathered (l, n, tile row, column, c), B^T along l; then column l of every
        # tile gathered (row i, l, n, tile row, tile column, c), B^T along l for each i: v[i, j] as u orders them
        g = half_y[: a * n * tb * wp * c].view(a, n, tb, wp, c)
        g.copy_(src.unfold(1, a, t).permute(4, 0, 1, 2, 3))
        r = half_x[: a * n * tb * wp * c].view(a, n, tb, wp, c)
        torch.mm(bt, g.view(a, -1), out=r.view(a, -1))
        gc = half_y[: a * a * p * c].view(a, a, n, tb, tw, c)
        gc.copy_(r.unfold(3, a, t).permute(0, 5, 1, 2, 3, 4))
        v = half_x[: a * a * p * c].view(a, a, p * c)
        torch.bmm(bt.expand(a, a, a), gc.view(a, a, -1), out=v)
        m = torch.bmm(v.view(a * a, p, c), u, out=m_buf[: a * a * p * k].view(a * a, p, k))
        # A^T m A: A^T along the rows, then along the columns for each output row: (i, j, n, tile row, tile col, K)
        y1 = half_x[: t * a * p * k].view(t, a, p * k)
        torch.mm(at, m.view(a, -1), out=y1.view(t, -1))
        y = half_y[: t * t * p * k].view(t, t, p * k)
        torch.bmm(at.expand(t, t, a), y1, out=y)
        # into the band's pixels with the bias, in one op where the band is whole tiles; a ragged last row or
        # column of tiles (VGG's 80x34 and 40x17 levels) is cut to the image
        tiles = y.view(t, t, n, tb, tw, k).permute(2, 3, 0, 4, 1, 5)  # (n, tile row, i, tile col, j, K)
        r0, r1 = t * t0, min(t * (t0 + tb), h)
        band = out[:, r0:r1]
        if r1 - r0 == t * tb and w == t * tw:
            dst, src_px = band.view(n, tb, t, tw, t, k), tiles
        else:
            dst, src_px = band, tiles.reshape(n, t * tb, t * tw, k)[:, : r1 - r0, :w]
        if bias is None:
            dst.copy_(src_px)
        else:
            torch.add(src_px, bias, out=dst)
    del work, m_buf
    return out.permute(0, 3, 1, 2)


class WinogradConv3x3(nn.Module):
    """Inference stand-in for a stride-1, padding-1 3x3 ``nn.Conv2d``: the same function by F(tile x tile, 3x3).

    It holds the conv's taps (:func:`filter_taps`: the weights' size) and the bias, and transforms the taps for
    each call (one (alpha^2 x 9) GEMM in float32, ~7 ms for a 512x512 layer on 2 cores: 1e-8 relative of the
    float64 transform) into a per-thread scratch buffer: holding the transformed filters instead (4x the weights
    for F(4x4)) would add ~160 MiB for VGG's wide layers to a CPU run's peak memory."""

    def __init__(self, conv: nn.Conv2d, tile: int = TILE) -> None:
        super().__init__()
        if not eligible(conv):
            raise ValueError(f"not a 3x3 stride-1 padding-1 ungrouped conv: {conv}")
        self.in_channels, self.out_channels, self.tile = conv.in_channels, conv.out_channels, tile
        self.register_buffer("taps", filter_taps(conv.weight))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.register_buffer("transform", _transform(tile, torch.float32).to(conv.weight.device), persistent=False)

    def filters(self) -> torch.Tensor:
        """This call's transformed filters (alpha^2, C, K), in this thread's scratch buffer."""
        n = self.transform.shape[0] * self.in_channels * self.out_channels
        out = _scratch(self.taps.device, n).view(self.transform.shape[0], -1)
        return torch.mm(self.transform, self.taps.view(9, -1), out=out).view(-1, self.in_channels, self.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv3x3(x, self.filters(), self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=(3, 3), F({self.tile}x{self.tile}, 3x3)"


def eligible(conv: nn.Module, min_channels: int = 0) -> bool:
    """Whether ``conv`` is a Conv2d this module computes (3x3, stride 1, padding 1, no dilation or groups)."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros" and conv.in_channels >= min_channels)


def swap_wide_convs(module: nn.Module, min_channels: int = MIN_CHANNELS, tile: int = TILE) -> list[str]:
    """Replace every eligible conv with at least ``min_channels`` inputs by :class:`WinogradConv3x3` (F(tile x tile,
    3x3)), in place (their weights are released); returns the replaced modules' names."""
    names = [name for name, m in module.named_modules() if eligible(m, min_channels)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, WinogradConv3x3(getattr(parent, child), tile))
    return names
