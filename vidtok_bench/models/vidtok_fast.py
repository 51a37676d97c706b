"""Channels-last forward of the VidTok encoder/decoder for CPUs: the same function, fewer copies.

The plain encoder/decoder (``vidtok_blocks``, like the official code) move every activation
between a per-frame layout (B*T,C,H,W) for the 2D blocks and a per-pixel layout (B*H*W,C,T)
for the temporal 1D blocks: two full copies per block, plus a contiguous copy inside each
LayerNorm (the official encoder also keeps every level's output alive in a list). Here
activations stay in one channels-last 3D tensor (memory order B,T,H,W,C): the per-frame
view (B*T,C,H,W) of it is free, LayerNorm over C reads contiguous rows, and each temporal
Conv1d runs as a Conv3d with a (k,1,1) kernel on the same memory, so oneDNN gets
channels-last inputs and weights without reorders.

3D convolutions run through oneDNN (``aten.mkldnn_convolution``) for float32 CPU tensors: PyTorch
picks its reference ``slow_conv3d`` for some 3x3x3 shapes (3 input or output channels: the encoder's
first and the decoder's last conv), 7x slower at 640x272. v1.0's zero past is concatenated in front
(``F.pad`` zero-fills the whole padded tensor, then copies), large activations a few output frames at
a time so no padded copy of the whole activation is held, and the spatial padding is the conv's own; ResNet blocks apply SiLU in place on the fresh norm output and add the residual into
the fresh conv output (the same values).

Parameters, state-dict keys, caches (v1.1 tiling) and results are unchanged (equal to the
plain path within float rounding; ``tests/test_vidtok_fast.py``).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from .vidtok import _V10TimeDownsample, _V10TimeUpsample, _ZeroPastConv3d
from .vidtok_blocks import (
    VidTokCausalConv1d,
    VidTokDecoder3D,
    VidTokEncoder3D,
    VidTokLayerNorm,
    VidTokResnetBlock,
    avg_pool,
    time_x2,
)

CL3D = torch.channels_last_3d


def _onednn(x: torch.Tensor) -> bool:
    """Call oneDNN directly: float32 CPU inference, outside autocast (whose casts the direct call would skip)
    and outside Python dispatch modes (FLOP and memory counters see ``aten.convolution``, not the backend op)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and torch.backends.mkldnn.is_available() \
        and torch.backends.mkldnn.enabled and not torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu") \
        and not _dispatch_mode_active()


def _dispatch_mode_active() -> bool:
    try:
        from torch.utils._python_dispatch import _get_current_dispatch_mode

        return _get_current_dispatch_mode() is not None
    except ImportError:  # pragma: no cover - older torch
        return False


def _conv3d(x: torch.Tensor, conv: nn.Conv3d, padding: tuple[int, int, int]) -> torch.Tensor:
    """``conv`` (its weights, stride, dilation) with zero ``padding``: oneDNN on float32 CPU tensors."""
    return _conv3d_with(x, conv.weight, conv.bias, padding, tuple(conv.stride), tuple(conv.dilation), conv.groups)


def _conv3d_with(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, padding: tuple[int, int, int],
                 stride: tuple[int, int, int], dilation: tuple[int, int, int], groups: int = 1) -> torch.Tensor:
    """``F.conv3d``, on float32 CPU tensors always oneDNN's kernel. PyTorch's own choice sends a batch-1 input
    with ``C*T*H <= 20480`` and a 1x1 spatial kernel to its im2col fallback (``slow_conv3d``): the VidTok
    temporal convs on row slabs, 4-6x slower there (13-21 ms against 2-5 ms per 16 MB slab on the 2-core box)."""
    if _onednn(x):
        return torch.ops.aten.mkldnn_convolution(x.contiguous(memory_format=CL3D), weight, bias, list(padding),
                                                 list(stride), list(dilation), groups)
    return F.conv3d(x, weight, bias, stride, padding, dilation, groups)


class OneDNNConv3d(nn.Conv3d):
    """nn.Conv3d whose CPU float32 inference always runs oneDNN's kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding_mode != "zeros" or isinstance(self.padding, str) or not _onednn(x):
            return super().forward(x)
        return _conv3d(x, self, self.padding)


def _zero_past(x: torch.Tensor, time_pad: int) -> torch.Tensor:
    """x with ``time_pad`` zero frames in front: one copy of x (``F.pad`` first fills the whole padded
    tensor with zeros, then copies x into it: two passes)."""
    if time_pad == 0:
        return x
    zeros = torch.empty((x.shape[0], x.shape[1], time_pad, *x.shape[3:]), dtype=x.dtype, device=x.device,
                        memory_format=CL3D if x.is_contiguous(memory_format=CL3D) else torch.contiguous_format).zero_()
    return torch.cat((zeros, x), dim=2)


#: output frames per piece of a large v1.0 causal conv, and the input size (elements) from which it is cut
CHUNK_FRAMES, CHUNK_MIN_ELEMS = 5, 1 << 24


def _zero_past_pieces(piece: Callable[[int, int, int], torch.Tensor], t_in: int, time_pad: int, kernel: int,
                      stride: int, dilation: int, conv: Callable[[torch.Tensor], torch.Tensor],
                      frames: int = CHUNK_FRAMES) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(o0, o1, conv output frames [o0, o1))`` of ``conv`` over ``t_in`` input frames with ``time_pad`` zero
    frames in front, ``frames`` output frames at a time; ``piece(a, b, zeros)`` gives input frames [a, b)
    with ``zeros`` zero frames in front."""
    span = dilation * (kernel - 1) + 1
    t_out = (t_in + time_pad - span) // stride + 1
    for o0 in range(0, t_out, frames):
        o1 = min(t_out, o0 + frames)
        a, b = o0 * stride - time_pad, (o1 - 1) * stride + span - time_pad  # input frames [a, b), < 0: zeros
        yield o0, o1, conv(piece(max(0, a), b, max(0, -a)))


def _zero_past_conv(x: torch.Tensor, time_pad: int, kernel: int, stride: int, dilation: int,
                    conv: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``conv`` (no time padding of its own) of x with ``time_pad`` zero frames in front. A large x is
    taken CHUNK_FRAMES output frames at a time, each piece with the input frames it needs, into one
    output: no padded copy of the whole activation is held (the same outputs, each computed once)."""
    span = dilation * (kernel - 1) + 1
    t_out = (x.shape[2] + time_pad - span) // stride + 1
    if t_out <= CHUNK_FRAMES or x.numel() < CHUNK_MIN_ELEMS:
        return conv(_zero_past(x, time_pad))
    pieces = _zero_past_pieces(lambda a, b, zeros: _zero_past(x[:, :, a:b], zeros), x.shape[2], time_pad, kernel,
                               stride, dilation, conv)
    return _assemble(pieces, t_out, 2, CL3D)


def _assemble(pieces: Iterable[tuple[int, int, torch.Tensor]], n: int, dim: int,
              memory_format: torch.memory_format | None = None, into: torch.Tensor | None = None) -> torch.Tensor:
    """Pieces ``(start, end, y)`` along ``dim`` written into one output of size ``n`` there: ``into``, or one
    allocated when the first piece arrives (its dtype and device; ``memory_format``, or the piece's 2D
    channels-last layout). Writing ``into`` the pieces' own input is safe when each piece reads only its own
    range, which is computed before it is overwritten."""
    out = into
    for s, e, y in pieces:
        if out is None:
            shape = list(y.shape)
            shape[dim] = n
            fmt = memory_format or (torch.channels_last if y.dim() == 4 and y.is_contiguous(memory_format=torch.channels_last)
                                    else torch.contiguous_format)
            out = torch.empty(shape, dtype=y.dtype, device=y.device, memory_format=fmt)
        out.narrow(dim, s, e - s).copy_(y)
    assert out is not None, "no pieces"
    return out


class FastZeroPastConv3d(_ZeroPastConv3d):
    """v1.0 causal 3D conv (zeros for the past): past frames concatenated, spatial padding in the conv."""

    def _direct(self) -> bool:
        """Symmetric spatial padding done by the conv itself (else the plain forward's F.pad)."""
        c, (w0, w1, h0, h1, *_) = self.conv, self.spatial_padding
        return w0 == w1 and h0 == h1 and tuple(c.padding) == (0, 0, 0) and c.padding_mode == "zeros"

    def _conv(self, v: torch.Tensor) -> torch.Tensor:
        w0, _, h0, *_ = self.spatial_padding
        return _conv3d(v, self.conv, (0, h0, w0))

    def pieces(self, piece: Callable[[int, int, int], torch.Tensor], t_in: int, frames: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        """This conv over ``t_in`` frames, ``frames`` output frames at a time (see ``_zero_past_pieces``)."""
        c = self.conv
        return _zero_past_pieces(piece, t_in, self.time_pad, c.kernel_size[0], c.stride[0], c.dilation[0], self._conv, frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._direct():
            return super().forward(x)
        c = self.conv
        return _zero_past_conv(x, self.time_pad, c.kernel_size[0], c.stride[0], c.dilation[0], self._conv)


#: on CPUs, a per-frame ResNet block whose input has CHUNK_MIN_ELEMS elements or more runs a slab of about
#: SLAB_ELEMS input elements (float32: 16 MB; above the CLI's 4 MB mmap threshold, so a slab's temporaries
#: go back to the system when freed, on huge pages when faulted in again: see ``allocator``) at a time
SLAB_ELEMS = 1 << 22


def _per_slab(x: torch.Tensor, dim: int) -> int | None:
    """How many of x's entries along ``dim`` one slab takes: about SLAB_ELEMS elements, on CPUs for
    activations of CHUNK_MIN_ELEMS or more; None when x runs whole."""
    n = x.shape[dim]
    per = max(1, SLAB_ELEMS * n // max(1, x.numel()))
    return per if x.device.type == "cpu" and x.numel() >= CHUNK_MIN_ELEMS and per < n else None


def _in_slabs(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``fn(x)`` for a per-frame ``fn`` on (N,C,H,W) frames, a slab of frames at a time into one output: the
    block's norm and conv temporaries then exist for one slab, not the clip (at the decoder's last level of a
    640x272 clip its first block held its 334 MB input, a 334 MB norm output and a 167 MB conv output). With
    ``inplace`` (``fn`` keeps the shape, and the caller's ``x`` is not needed after) each slab's output is
    written over its input, so no second clip-sized tensor exists at all.
    CPU only: the GPU figures were measured on whole activations."""
    n, per = x.shape[0], _per_slab(x, 0)
    if per is None:
        return fn(x)
    return _assemble(((s, min(n, s + per), fn(x[s:s + per])) for s in range(0, n, per)), n, 0,
                     into=x if inplace else None)  # frames are independent


def _per_frame(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D layer to every frame of (B,C,T,H,W); a view both ways when x is channels-last."""
    b, c, t, h, w = x.shape
    y = fn(x.transpose(1, 2).reshape(b * t, c, h, w))
    return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


def _temporal_conv(mod: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A (causal) Conv1d over time applied to (B,C,T,H,W) as a Conv3d with kernel (k,1,1)."""
    conv = mod if isinstance(mod, nn.Conv1d) else mod.conv
    w = conv.weight.unsqueeze(-1).unsqueeze(-1)

    def run(v: torch.Tensor, pad: int) -> torch.Tensor:
        return _conv3d_with(v, w, conv.bias, (pad, 0, 0), (conv.stride[0], 1, 1), (conv.dilation[0], 1, 1))

    if isinstance(mod, nn.Conv1d):  # non-causal models: symmetric zero padding
        return run(x, mod.padding[0])
    if type(mod) is not VidTokCausalConv1d and conv.padding[0] == 0:  # v1.0 (_ZeroPastConv1d): zeros, no cache
        return _zero_past_conv(x, mod.time_pad, conv.kernel_size[0], conv.stride[0], conv.dilation[0], lambda v: run(v, 0))
    return run(_causal_pad(mod, x), 0)


def _causal_pad(mod: VidTokCausalConv1d, x: torch.Tensor) -> torch.Tensor:
    """The past frames a causal temporal conv sees: v1.0 zeros; v1.1 the first frame or the previous chunk's cache."""
    if type(mod) is not VidTokCausalConv1d:  # v1.0's _ZeroPastConv1d subclass
        return F.pad(x, (0, 0, 0, 0, mod.time_pad, 0))  # v1.0 (_ZeroPastConv1d): zeros, no cache
    if mod.is_first_chunk:
        past = x[:, :, :1].expand(-1, -1, mod.time_pad, -1, -1)
    else:
        past = mod.causal_cache[:, :, -mod.time_pad:] if mod.time_pad else mod.causal_cache[:, :, 0:0]
    x = torch.cat((past, x), dim=2)
    mod.causal_cache = (x if mod.cache_offset == 0 else x[:, :, : -mod.cache_offset]).clone()
    return x


class FastLayerNorm(VidTokLayerNorm):
    """LayerNorm over the channels (dim 1) of (B,C,T,H,W), (B*T,C,H,W) or (B,C,L); under half-precision autocast
    it runs in that dtype.

    Channels-last input makes the permutes views, so no copies. Autocast runs ``layer_norm`` in float32:
    a cast of the bf16 input, a float32 output twice its size and a cast back at the next conv; with
    VidTok in bf16 on an H100 the norms were the largest share of kernel time. PyTorch's layer norm
    accumulates half-precision input in float32 (the same statistics); its output is rounded to the
    dtype the next conv rounds it to anyway, one SiLU earlier. Input already in float32 and everything
    outside autocast: unchanged.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kind, d = x.device.type, x.dim()
        # autocast exists for real devices only (asking about 'meta', as FLOP counting runs, raises)
        if d not in (3, 4, 5) or kind not in ("cuda", "cpu") or not torch.is_autocast_enabled(kind):
            return super().forward(x)
        dtype = torch.get_autocast_dtype(kind)
        if dtype not in (torch.bfloat16, torch.float16) or x.dtype != dtype:  # float32 input: autocast's float32 norm
            return super().forward(x)
        n = self.norm
        # the CPU kernel takes float32 scale/shift with half-precision input (no rounding of them); the CUDA
        # kernel wants one dtype, so there they are cast (what the H100 check ran: bf16 within 46 dB of fp32)
        w, b = (n.weight, n.bias) if kind == "cpu" else (n.weight.to(dtype), n.bias.to(dtype))
        with torch.autocast(kind, enabled=False):  # channels last, normalised, channels back to dim 1
            y = F.layer_norm(x.permute(0, *range(2, d), 1), n.normalized_shape, w, b, n.eps)
        return y.permute(0, d - 1, *range(1, d - 1))


def _silu_norm(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SiLU(norm(x)), in place on the norm's fresh output."""
    return F.silu(norm(x), inplace=True)


def _temporal_convs(blk: VidTokResnetBlock) -> list[nn.Module]:
    return [blk.conv1, blk.conv2, *([blk.shortcut] if blk.shortcut is not None else [])]


def _temporal_whole(blk: VidTokResnetBlock, x: torch.Tensor) -> torch.Tensor:
    """VidTokResnetBlock(btype='1d') on (B,C,T,H,W): norm, SiLU, conv over time, twice, plus the residual."""
    h = _silu_norm(blk.norm2, _temporal_conv(blk.conv1, _silu_norm(blk.norm1, x)))  # conv1's output freed here
    h = _temporal_conv(blk.conv2, h)
    if blk.shortcut is not None:
        x = _temporal_conv(blk.shortcut, x)
    return h.add_(x) if h.shape == x.shape else x + h  # h: a fresh conv output (or a slice of one)


def _row_slabs(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, per: int) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(start, end, fn(rows start..end))`` of x, ``per`` rows at a time; each slab is copied dense first (one
    slab, ~16 MB), so the norms and convolutions see the layout they see on whole activations."""
    rows = x.shape[3]
    for s in range(0, rows, per):
        yield s, min(rows, s + per), fn(_cl(x[:, :, :, s:s + per]))


def _silu_norm_over(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """SiLU(norm(x)) for an ``x`` nobody needs after, on CPUs for large activations written over x a slab of
    rows at a time (the norm treats each position on its own): the decoder's last activation (284 MB at
    640x272 with 24 channels) then has no second copy beside it while ``conv_out`` waits."""
    per = _per_slab(x, 3) if x.dim() == 5 else None
    if per is None:
        return _silu_norm(norm, x)
    return _assemble(_row_slabs(lambda v: _silu_norm(norm, v), x, per), x.shape[3], 3, into=x)


def _temporal_block(blk: VidTokResnetBlock, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """:func:`_temporal_whole`, on CPUs for large activations a slab of rows at a time: every step (norm over
    channels, conv over time) treats each (row, column) on its own, so rows need no neighbours. The block's
    norm and conv temporaries then exist for one slab, not the clip (at the encoder's first level of a 640x272
    clip with 12 channels each is 142 MB; at the decoder's last with 24, 334 MB). With ``inplace`` the output
    is written over ``x`` (the caller's last reference to it), each slab after it was read.
    v1.1's causal convs keep a cache of the clip's last frames between calls, so their blocks run whole."""
    per = _per_slab(x, 3) if x.dim() == 5 else None
    if per is None or any(type(m) is VidTokCausalConv1d for m in _temporal_convs(blk)):
        return _temporal_whole(blk, x)
    into = x if inplace and blk.in_channels == blk.out_channels else None
    return _assemble(_row_slabs(lambda v: _temporal_whole(blk, v), x, per), x.shape[3], 3, CL3D, into)


def _spatial_block(blk: VidTokResnetBlock, x: torch.Tensor) -> torch.Tensor:
    """VidTokResnetBlock(btype='2d') on (N,C,H,W) frames (inference, no time embedding): the plain forward
    with SiLU in place and the residual added into the fresh conv output."""
    h = blk.dropout(_silu_norm(blk.norm2, blk.conv1(_silu_norm(blk.norm1, x))))  # conv1's output freed here
    h = blk.conv2(h)
    if blk.shortcut is not None:
        x = blk.shortcut(x)
    return h.add_(x) if h.shape == x.shape else x + h  # h: a fresh conv output (or a slice of one)


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=CL3D)


class _FramePieces:
    """An activation (B,C,T,H,W) not materialised: its ``frames`` frames come as ``(start, end, piece)`` in
    order, once. A level's first per-frame block takes it piece by piece (see :func:`_level`)."""

    def __init__(self, frames: int, pieces: Iterator[tuple[int, int, torch.Tensor]]):
        self.frames, self.pieces = frames, pieces

    def materialize(self) -> torch.Tensor:
        return _assemble(self.pieces, self.frames, 2, CL3D)


def _level(box: list, spatial: nn.ModuleList, temporal: nn.ModuleList) -> torch.Tensor:
    """One resolution level: each per-frame 2D ResNet block followed by its temporal block. Takes its input
    out of ``box`` (the caller keeps no reference), so the level's input is freed after its first block:
    at 640x272 the decoder's last level starts from 334 MB that otherwise stayed alive through six blocks.
    An input given as :class:`_FramePieces` goes through the first 2D block a piece at a time, so it is never
    held whole (the decoder's last time upsampling: 334 MB at 640x272 beside its 167 MB input)."""
    h = box.pop()
    for blk2d, blk1d in zip(spatial, temporal):
        # the input is the level's own activation (or a fresh piece): overwritten in place where the shape stays
        block = lambda f, blk=blk2d: _in_slabs(lambda v: _spatial_block(blk, v), f,  # noqa: E731
                                               inplace=blk.in_channels == blk.out_channels)
        if isinstance(h, _FramePieces):
            src, h = h, None
            h = _assemble(((a, b, _per_frame(block, p)) for a, b, p in src.pieces), src.frames, 2, CL3D)
            del src  # the exhausted generator, and with it the input it read from
        else:
            h = _per_frame(block, h)
        h = _temporal_block(blk1d, h, inplace=True)  # h: the 2D block's fresh output, referenced only here
    return h.materialize() if isinstance(h, _FramePieces) else h


def _mix(alpha: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``alpha * a + (1 - alpha) * b`` (the same products and sum) written into the fresh ``a`` and ``b``:
    at 24 channels and 640x272 each temporary of the plain expression is 330 MB."""
    b.mul_(1 - alpha)
    return b.add_(a.mul_(alpha))


class FastV10TimeDownsample(_V10TimeDownsample):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.mix_factor)
        pooled = avg_pool(self.avg_pool, F.pad(x, (0, 0, 0, 0, 1, 0)))
        conv = self.conv(x)
        if pooled.shape != conv.shape or pooled.dtype != conv.dtype:
            return alpha * pooled + (1 - alpha) * conv
        return _mix(alpha, pooled, conv)


class _Frames:
    """The frames of (B,C,T,H,W) ``x``, or of a per-frame layer's output ``fn(x[:, :, k])``, each computed when
    first asked for and kept while among the last two computed: a consumer that walks forward in time (the
    decoder's time upsampling) then never holds the layer's whole output (at the decoder's last spatial
    upsampling of a 640x272 clip, 150 MB beside its 38 MB input)."""

    def __init__(self, x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor] | None = None):
        self.x, self.fn, self._kept = x, fn, {}
        first = self.frame(0)
        self.first, self.shape = first, (*first.shape[:2], x.shape[2], *first.shape[2:])

    def frame(self, k: int) -> torch.Tensor:
        if self.fn is None:
            return self.x[:, :, k]
        if k not in self._kept:
            if len(self._kept) == 2:
                del self._kept[next(iter(self._kept))]
            self._kept[k] = self.fn(self.x[:, :, k])
        return self._kept[k]


class FastV10TimeUpsample(_V10TimeUpsample):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lazy = self.frame_pieces(_Frames(x))
        if lazy is not None:
            return lazy.materialize()
        alpha = torch.sigmoid(self.mix_factor)
        up = time_x2(x, "nearest")
        conv = self.conv(up)
        if conv.shape != up.shape or conv.dtype != up.dtype:
            return alpha * up + (1 - alpha) * conv
        return _mix(alpha, up, conv)

    def can_piece(self, x: torch.Tensor) -> bool:
        """Whether :meth:`frame_pieces` may apply to input like ``x`` (float32 CPU, a direct zero-past conv)."""
        return isinstance(self.conv, FastZeroPastConv3d) and self.conv._direct() and _onednn(x)

    def frame_pieces(self, src: _Frames) -> _FramePieces | None:
        """The output for the input frames ``src`` as :class:`_FramePieces`, two frames at a time (float32 CPU,
        large activations; else None): frame j is ``alpha * x[j // 2] + (1 - alpha) * conv(up)[j]``, the conv
        reading its input frames from ``src`` as it walks forward, so neither the upsampled clip nor the conv's
        output is held whole (at the decoder's last upsampling of a 640x272 clip, 334 MB each), nor the input
        where ``src`` computes its frames. The same products and sums as the plain layer."""
        x, shape = src.first, src.shape
        if not (self.can_piece(x) and 2 * math.prod(shape) >= CHUNK_MIN_ELEMS):
            return None
        alpha = torch.sigmoid(self.mix_factor)
        n = 2 * shape[2]

        def frames(a: int, b: int, zeros: int = 0) -> torch.Tensor:  # up's frames [a, b) behind zeros, one copy
            v = torch.empty((*shape[:2], zeros + b - a, *shape[3:]), dtype=x.dtype, device=x.device, memory_format=CL3D)
            v[:, :, :zeros].zero_()
            for k, j in enumerate(range(a, b), start=zeros):
                v[:, :, k] = src.frame(j // 2)
            return v

        def pieces() -> Iterator[tuple[int, int, torch.Tensor]]:
            # two output frames per piece: at full resolution each frame is 17 MB per 24 channels
            for o0, o1, y in self.conv.pieces(frames, n, 2):
                if y.shape[1:] != (shape[1], o1 - o0, *shape[3:]) or y.dtype != x.dtype:
                    raise AssertionError(f"time upsampling conv gave {tuple(y.shape)} for frames {o0}:{o1} of {n}")
                yield o0, o1, frames(o0, o1).mul_(alpha).add_(y.mul_(1 - alpha))

        return _FramePieces(n, pieces())


def _resample(box: list, spatial: nn.Module, temporal: nn.Module | None) -> torch.Tensor | _FramePieces:
    """Spatial down/upsampling per frame, then the temporal one where this level has it (input taken out of
    ``box``, as ``_level``). A temporal upsampling that can (``frame_pieces``) takes the spatial layer's output
    frame by frame as it needs them and hands the next level pieces: the upsampled clip is never whole.
    Otherwise the spatial layer runs in slabs of frames (CPU, large activations): its padded or upsampled input
    copy then exists for one slab (the encoder's first downsampling of a 640x272 clip peaked 260 MB above it)."""
    x = box.pop()
    if isinstance(temporal, FastV10TimeUpsample) and temporal.can_piece(x):
        lazy = temporal.frame_pieces(_Frames(x, spatial))  # None for small activations (one frame computed)
        if lazy is not None:
            return lazy
    h = _per_frame(lambda f: _in_slabs(spatial, f), x)
    return h if temporal is None else _cl(temporal(h))


class FastEncoder(VidTokEncoder3D):
    """VidTokEncoder3D with the channels-last forward (inference only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        box = [_cl(self.conv_in(_cl(x)))]  # activations live in box only: see _level
        for i in range(self.num_resolutions):
            box.append(_level(box, self.down[i].block, self.down_temporal[i].block))
            if i in self.spatial_ds:
                temporal = self.down_temporal[i].downsample if i in self.tempo_ds else None
                box.append(_resample(box, self.down[i].downsample, temporal))
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(box.pop(), None)), None)
        return self.conv_out(self.nonlinearity(self.norm_out(h))).contiguous()


class FastDecoder(VidTokDecoder3D):
    """VidTokDecoder3D with the channels-last forward (inference only)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = _cl(self.conv_in(_cl(z)))
        box = [_cl(self.mid.block_2(self.mid.attn_1(self.mid.block_1(h, None)), None))]  # see _level
        for i in reversed(range(self.num_resolutions)):
            box.append(_level(box, self.up[i].block, self.up_temporal[i].block))
            if i in self.spatial_us:
                temporal = self.up_temporal[i].upsample if i in self.tempo_us else None
                box.append(_resample(box, self.up[i].upsample, temporal))
        # the last activation is referenced only here: normalised over itself (see _silu_norm_over)
        return self.conv_out(_silu_norm_over(self.norm_out, box.pop())).contiguous()


_FAST = {VidTokEncoder3D: FastEncoder, VidTokDecoder3D: FastDecoder, nn.Conv3d: OneDNNConv3d,
         _ZeroPastConv3d: FastZeroPastConv3d, _V10TimeDownsample: FastV10TimeDownsample,
         _V10TimeUpsample: FastV10TimeUpsample, VidTokLayerNorm: FastLayerNorm}
_PLAIN = {v: k for k, v in _FAST.items()}


def use_channels_last(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch a VidTokAutoencoder between the channels-last forward and the plain one, in place.

    Conv weights move to channels-last memory (Conv3d: ``channels_last_3d``, Conv2d: ``channels_last``)
    or back; values, parameters and state-dict keys stay the same.
    """
    swap = _FAST if enabled else _PLAIN
    for m in model.modules():
        m.__class__ = swap.get(type(m), type(m))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            fmt = (CL3D if m.weight.ndim == 5 else torch.channels_last) if enabled else torch.contiguous_format
            m.weight.data = m.weight.data.contiguous(memory_format=fmt)
    return model
