"""3x3 convolutions (stride 1, padding 1) by Winograd's minimal filtering F(2x2, 3x3), for wide layers on CPUs.

Why: LPIPS-VGG is most of a CPU run's time, and its conv3-conv5 layers (256-512 channels) are plain fp32 3x3
convs that oneDNN's direct kernels already run near the cores' peak. F(2x2, 3x3) (Lavin & Gray, 2016) computes
each 2x2 output tile from a 4x4 input tile with 16 channel GEMMs instead of 36 multiply-adds per output channel
pair: 2.25x fewer FLOPs, paid for with memory-bound tile transforms, so it wins only where channels are many
(a GEMM per tile position is then large) -- :data:`MIN_CHANNELS`.

Numbers: this variant's transforms have coefficients 0 and +-1 (input, output) and 1/2 (filter, done once in
float64), so its float32 rounding stays within a few ulps of the sum of absolute products: on VGG-like layers
1.0-1.6e-7 of it, against 2.7-2.9e-7 for oneDNN's channels-last direct kernel that LPIPS ran before (the tests
check against float64).

Memory: tiles are transformed one horizontal band at a time (:data:`BAND_BYTES` of transformed input) in two
buffers reused by every band, so the extra memory is ~2 bands, not 4x the layer's input. Inference only (the
transforms write into preallocated buffers, which autograd does not follow).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

#: input channels from which a 3x3 conv runs by Winograd on CPUs (VGG's layers at 640x272 on 2 AVX-512 cores:
#: 512 channels 1.5-1.7x faster, 256 1.15-1.6x, 128 no faster, 64 2x slower)
MIN_CHANNELS = 256
#: transformed input per band (16 tile positions x tiles x channels x 4 bytes)
BAND_BYTES = 4 << 20

#: F(2x2, 3x3) filter transform G (4x3)
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def transform_filter(weight: torch.Tensor) -> torch.Tensor:
    """(K, C, 3, 3) conv weights -> (16, C, K) float32 ``G g G^T`` per tile position, computed in float64 in one
    piece (its temporaries are large enough for glibc to map and give back whole, unlike chunks of a few MB)."""
    g = torch.tensor(_G, dtype=torch.float64)
    u = torch.einsum("ai,kcij,bj->abck", g, weight.detach().to("cpu", torch.float64), g)
    return u.reshape(16, weight.shape[1], weight.shape[0]).to(torch.float32).contiguous()


def _rows(d0: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor, d3: torch.Tensor, out: torch.Tensor) -> None:
    """``B^T d`` along one axis: out[0..3] = d0 - d2, d1 + d2, d2 - d1, d1 - d3."""
    torch.sub(d0, d2, out=out[0])
    torch.add(d1, d2, out=out[1])
    torch.sub(d2, d1, out=out[2])
    torch.sub(d1, d3, out=out[3])


def _cut(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` (N, tile rows, tile columns, K) cut to ``like``'s rows and columns (an image's odd last row/column)."""
    return t[:, : like.shape[1], : like.shape[2]]


def conv3x3(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None = None, *,
            band_bytes: int = BAND_BYTES) -> torch.Tensor:
    """``F.conv2d(x, w, bias, padding=1)`` for (N, C, H, W) float32 ``x`` with ``u = transform_filter(w)``.

    Returns a channels-last (N, K, H, W) tensor (the layout oneDNN's next conv reads without a reorder)."""
    n, c, h, w = x.shape
    k = u.shape[2]
    th, tw = (h + 1) // 2, (w + 1) // 2
    wp = 2 * tw + 2  # a band's padded width
    xh = x.permute(0, 2, 3, 1)  # NHWC: a view of a channels-last input
    out = x.new_empty(n, h, w, k)
    step = min(th, max(1, band_bytes // (16 * n * tw * max(c, k) * 4)))
    # two buffers per call, reused by every band: [padded input band | row pass | transformed input] and the
    # products. Few, large allocations (glibc maps them and gives them back) instead of a few per band.
    src_len, r_len = n * (2 * step + 2) * wp * c, 4 * n * step * wp * c
    work = x.new_empty(src_len + r_len + 16 * n * step * tw * c)
    m_buf = x.new_empty(16 * n * step * tw * k)
    for t0 in range(0, th, step):
        tb = min(th, t0 + step) - t0
        p = n * tb * tw
        # input rows lo ... lo + 2*tb + 1, zero-padded by 1 on the left and up to whole tiles on the right and
        # past the last row (a copy of the band only: the layer's input is never copied whole)
        lo, rows = 2 * t0 - 1, 2 * tb + 2
        a0, a1 = max(lo, 0), min(lo + rows, h)
        src = work[: n * rows * wp * c].view(n, rows, wp, c)
        src[:, :, 0].zero_()
        src[:, :, w + 1:].zero_()
        src[:, : a0 - lo].zero_()
        src[:, a1 - lo:].zero_()
        src[:, a0 - lo: a1 - lo, 1: w + 1].copy_(xh[:, a0:a1])
        r = work[src_len: src_len + 4 * n * tb * wp * c].view(4, n, tb, wp, c)
        _rows(*(src[:, i: i + 2 * tb: 2] for i in range(4)), out=r)
        v = work[src_len + r_len: src_len + r_len + 16 * p * c].view(4, 4, n, tb, tw, c)
        for i in range(4):
            _rows(*(r[i][:, :, j: j + 2 * tw: 2] for j in range(4)), out=v[i])
        m = torch.bmm(v.view(16, p, c), u, out=m_buf[: 16 * p * k].view(16, p, k)).view(4, 4, n, tb, tw, k)
        # A^T m A with A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]: rows in place (m[0], m[1] become the two sums),
        # then columns into the band's output pixels (a last odd row or column of tiles is cut to the image)
        m[0].add_(m[1]).add_(m[2])
        m[1].sub_(m[2]).sub_(m[3])
        band = out[:, 2 * t0: min(2 * (t0 + tb), h)]
        for i in range(2):
            even, odd = band[:, i::2, 0::2], band[:, i::2, 1::2]
            torch.add(_cut(m[i][0], even), _cut(m[i][1], even), out=even).add_(_cut(m[i][2], even))
            torch.sub(_cut(m[i][1], odd), _cut(m[i][2], odd), out=odd).sub_(_cut(m[i][3], odd))
        if bias is not None:
            band.add_(bias)
    del work, m_buf
    return out.permute(0, 3, 1, 2)


class WinogradConv3x3(nn.Module):
    """Inference stand-in for a stride-1, padding-1 3x3 ``nn.Conv2d``: the same function by F(2x2, 3x3).

    It holds the transformed filters (``u``, 16/9 of the weights' size) and the bias, not the weights: swapping
    a wide network's convs would otherwise keep both (VGG16's conv3_2-conv5_3: 57 MB of weights, 97 MB of ``u``)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if not eligible(conv):
            raise ValueError(f"not a 3x3 stride-1 padding-1 ungrouped conv: {conv}")
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.register_buffer("u", transform_filter(conv.weight).to(conv.weight.device))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return conv3x3(x, self.u, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=(3, 3), F(2x2, 3x3)"


def eligible(conv: nn.Module, min_channels: int = 0) -> bool:
    """Whether ``conv`` is a Conv2d this module computes (3x3, stride 1, padding 1, no dilation or groups)."""
    return (type(conv) is nn.Conv2d and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
            and conv.padding == (1, 1) and conv.dilation == (1, 1) and conv.groups == 1
            and conv.padding_mode == "zeros" and conv.in_channels >= min_channels)


def swap_wide_convs(module: nn.Module, min_channels: int = MIN_CHANNELS) -> list[str]:
    """Replace every eligible conv with at least ``min_channels`` inputs by :class:`WinogradConv3x3`, in place
    (their weights are released); returns the replaced modules' names."""
    names = [name for name, m in module.named_modules() if eligible(m, min_channels)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, WinogradConv3x3(getattr(parent, child)))
    return names
