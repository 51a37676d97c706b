"""VidTok building blocks (encoder, decoder and their layers) in plain torch, for inference.

Constructor signatures, attribute and submodule names (hence state-dict keys) follow the
official VidTok code as diffusers ships it (``diffusers.models.autoencoders.autoencoder_vidtok``),
and so do the forwards: v1.1 causal layers with their first-chunk handling and causal caches,
v1.0 non-causal layers (v1.0 *causal* semantics are swapped in by ``vidtok._to_v10_causal``).
``tests/test_vidtok_blocks.py`` checks keys and outputs against diffusers' classes.

Why not import diffusers: its module pulls in ``diffusers.utils`` (torch._dynamo, sympy,
triton), every diffusers model, scipy and torchvision: 3-5 s and ~250 MB RSS per process.

Activation layouts: 5D tensors are (B,C,T,H,W); 2D blocks see per-frame (B*T,C,H,W) and
temporal 1D blocks per-pixel (B*H*W,C,T) tensors, as in the official code.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

_Int3 = Union[int, Sequence[int]]


def _triple(v: _Int3) -> tuple[int, int, int]:
    return (v,) * 3 if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def avg_pool(pool: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """avg_pool3d has no half-precision CPU kernel: pool in float32, cast back."""
    if x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16):
        return pool(x.float()).to(x.dtype)
    return pool(x)


def time_x2(x: torch.Tensor, mode: str) -> torch.Tensor:
    """2x interpolation along time (dim 2), computed in float32 as the official code does."""
    return F.interpolate(x.to(torch.float32), scale_factor=[2.0, 1.0, 1.0], mode=mode).to(x.dtype)


def _to_frames(x: torch.Tensor) -> torch.Tensor:
    """(B,C,T,H,W) -> (B*T,C,H,W)."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def _from_frames(y: torch.Tensor, b: int) -> torch.Tensor:
    """(B*T,C,H,W) -> (B,C,T,H,W) (a view)."""
    return y.reshape(b, -1, *y.shape[1:]).transpose(1, 2)


def _to_pixels(x: torch.Tensor) -> torch.Tensor:
    """(B,C,T,H,W) -> (B*H*W,C,T)."""
    b, c, t, h, w = x.shape
    return x.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, t)


def _from_pixels(y: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
    """(B*H*W,C,T) -> (B,C,T,H,W) (a view)."""
    return y.reshape(b, h, w, *y.shape[1:]).permute(0, 3, 4, 1, 2)


# ----------------------------------------------------------------------------- layers
class VidTokLayerNorm(nn.Module):
    """LayerNorm over the channel dim (1) of (B,C,L), (B,C,H,W) or (B,C,T,H,W) tensors."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps, elementwise_affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class _CausalPast(nn.Module):
    """Past frames for a causal conv over time (dim 2): ``time_pad`` frames in front, replicas of the first
    frame in the first chunk, the previous chunk's last frames (``causal_cache``) after it (v1.1 tiling).
    ``cache_offset`` frames at the end of a chunk are left out of the cache (the decoder's overlapping
    chunk decodes them again)."""

    time_pad: int

    def _init_cache(self) -> None:
        self.is_first_chunk = True
        self.causal_cache: Optional[torch.Tensor] = None
        self.cache_offset = 0

    def _with_past(self, x: torch.Tensor) -> torch.Tensor:
        """x with its past frames in front; updates the cache. Only the cache's last ``time_pad`` frames
        are ever read, so only those are kept (the official code keeps a copy of the whole padded chunk
        per layer; the results are the same)."""
        if self.time_pad <= 0:
            return x
        if self.is_first_chunk:
            past = x[:, :, :1].expand(*x.shape[:2], self.time_pad, *x.shape[3:])
        else:
            past = self.causal_cache[:, :, -self.time_pad:]
        x = torch.cat((past, x), dim=2)
        kept = x[:, :, :-self.cache_offset] if self.cache_offset else x
        self.causal_cache = kept[:, :, -self.time_pad:].clone()
        return x


class VidTokCausalConv1d(_CausalPast):
    """Conv1d over time (N,C,T) that sees only the past (see :class:`_CausalPast`). ``padding`` is accepted
    for the official signature; the conv itself pads nothing."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 dilation: int = 1, padding: int = 0):
        super().__init__()
        self.time_pad = dilation * (kernel_size - 1) + (1 - stride)
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation)
        self._init_cache()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self._with_past(x))


class VidTokCausalConv3d(_CausalPast):
    """Conv3d on (B,C,T,H,W), causal in time (see :class:`_CausalPast`), spatially 'same'-padded with
    ``pad_mode``. ``padding`` is accepted for the official signature; the padding follows the kernel."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: _Int3, stride: _Int3 = 1,
                 dilation: _Int3 = 1, padding: _Int3 = 0, pad_mode: str = "constant"):
        super().__init__()
        k, s, d = _triple(kernel_size), _triple(stride), _triple(dilation)
        self.pad_mode = pad_mode
        self.time_pad, hp, wp = (d[i] * (k[i] - 1) + (1 - s[i]) for i in range(3))
        self.spatial_padding = (wp // 2, wp - wp // 2, hp // 2, hp - hp // 2, 0, 0)
        self.conv = nn.Conv3d(in_channels, out_channels, k, stride=s, dilation=d)
        self._init_cache()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(self._with_past(x), self.spatial_padding, mode=self.pad_mode))


class VidTokDownsample2D(nn.Module):
    """2x spatial downsampling of (N,C,H,W): zero pad right/bottom, 3x3 conv with stride 2."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class VidTokUpsample2D(nn.Module):
    """2x nearest spatial upsampling of (N,C,H,W) (in float32), then a 3x3 conv."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.in_channels = in_channels
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x.to(torch.float32), scale_factor=2.0, mode="nearest").to(x.dtype))


class VidTokDownsample3D(nn.Module):
    """2x temporal downsampling: ``a * avgpool + (1 - a) * strided conv``, ``a = sigmoid(mix_factor)``.

    Causal (v1.1): the pool sees the previous frame (the first frame replicated in the first chunk,
    else the previous chunk's last frame) and the causal conv its own past. Non-causal (v1.0): pool and
    conv both see the clip with one zero frame appended.
    """

    def __init__(self, in_channels: int, out_channels: int, mix_factor: float = 2.0, is_causal: bool = True):
        super().__init__()
        self.is_causal = is_causal
        self.kernel_size = (3, 3, 3)
        self.avg_pool = nn.AvgPool3d((3, 1, 1), stride=(2, 1, 1))
        conv_cls = VidTokCausalConv3d if is_causal else nn.Conv3d
        self.conv = conv_cls(in_channels, out_channels, 3, stride=(2, 1, 1), padding=(0, 1, 1))
        # torch.Tensor ignores a torch.device context: build_vidtok moves the model afterwards
        self.mix_factor = nn.Parameter(torch.Tensor([mix_factor]))
        if is_causal:
            self.is_first_chunk = True
            self.causal_cache: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.mix_factor)
        if self.is_causal:
            prev = x[:, :, :1] if self.is_first_chunk else self.causal_cache
            padded = torch.cat((prev, x), dim=2)
            self.causal_cache = padded[:, :, -1:].clone()
            pooled, conv = avg_pool(self.avg_pool, padded), self.conv(x)
        else:
            x = F.pad(x, (0, 0, 0, 0, 0, 1))
            pooled, conv = avg_pool(self.avg_pool, x), self.conv(x)
        return alpha * pooled + (1 - alpha) * conv


class VidTokUpsample3D(nn.Module):
    """2x temporal upsampling: ``a * interp + (1 - a) * conv(interp)``, ``a = sigmoid(mix_factor)``.

    Non-causal (v1.0): nearest. Causal (v1.1): trilinear, with the first ``num_temp_upsample`` frames
    of the first chunk interpolated on their own (they stand for the clip's first frame) and later
    chunks interpolated behind the previous chunk's last ``num_temp_upsample`` frames (the cache),
    whose own upsampled frames are dropped again.
    """

    def __init__(self, in_channels: int, out_channels: int, mix_factor: float = 2.0,
                 num_temp_upsample: int = 1, is_causal: bool = True):
        super().__init__()
        conv_cls = VidTokCausalConv3d if is_causal else nn.Conv3d
        self.conv = conv_cls(in_channels, out_channels, 3, padding=1)
        self.mix_factor = nn.Parameter(torch.Tensor([mix_factor]))  # see VidTokDownsample3D
        self.is_causal = is_causal
        self.interpolation_mode = "trilinear" if is_causal else "nearest"
        if is_causal:
            self.num_temp_upsample = num_temp_upsample
            self.is_first_chunk = True
            self.causal_cache: Optional[torch.Tensor] = None

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        mode, n = self.interpolation_mode, getattr(self, "num_temp_upsample", 0)
        if not self.is_causal:
            return time_x2(x, mode)
        if not self.is_first_chunk:
            x = torch.cat((self.causal_cache, x), dim=2)
            self.causal_cache = x[:, :, -2 * n:-n].clone()
            return time_x2(x, mode)[:, :, 2 * n:]
        self.causal_cache = x[:, :, -n:].clone()
        head, rest = x[:, :, :n], x[:, :, n:]
        up = time_x2(head, mode)
        return torch.cat((up, time_x2(rest, mode)), dim=2) if rest.shape[2] > 0 else up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.mix_factor)
        x = self._upsample(x)
        return alpha * x + (1 - alpha) * self.conv(x)


class VidTokAttnBlock(nn.Module):
    """Residual self-attention over the pixels of each frame (separately per frame), 1x1x1 projections."""

    def __init__(self, in_channels: int, is_causal: bool = True):
        super().__init__()
        conv_cls = VidTokCausalConv3d if is_causal else nn.Conv3d
        self.norm = VidTokLayerNorm(dim=in_channels, eps=1e-6)
        self.q, self.k, self.v, self.proj_out = (
            conv_cls(in_channels, in_channels, kernel_size=1, stride=1, padding=0) for _ in range(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        b, c, t, hh, ww = x.shape
        q, k, v = (m(h).permute(0, 2, 3, 4, 1).reshape(b, t, hh * ww, c).contiguous() for m in (self.q, self.k, self.v))
        h = F.scaled_dot_product_attention(q, k, v).reshape(b, t, hh, ww, c).permute(0, 4, 1, 2, 3)
        return x + self.proj_out(h)


class VidTokResnetBlock(nn.Module):
    """Pre-activation ResNet block (norm, SiLU, conv, twice) with a 1x1 or 3x3 shortcut when the channels
    change. ``btype``: '2d' per frame (N,C,H,W), '1d' per pixel over time (N,C,T), '3d' on (B,C,T,H,W);
    the 1d/3d convs are causal when ``is_causal``."""

    def __init__(self, in_channels: int, out_channels: Optional[int] = None, conv_shortcut: bool = False,
                 dropout: float = 0.0, temb_channels: int = 512, btype: str = "3d", is_causal: bool = True):
        super().__init__()
        if btype not in ("1d", "2d", "3d"):
            raise ValueError(f"Invalid btype: {btype}")
        conv_cls = {"2d": nn.Conv2d, "1d": VidTokCausalConv1d if is_causal else nn.Conv1d,
                    "3d": VidTokCausalConv3d if is_causal else nn.Conv3d}[btype]
        out_channels = in_channels if out_channels is None else out_channels
        self.in_channels, self.out_channels = in_channels, out_channels
        self.use_conv_shortcut = conv_shortcut
        self.nonlinearity = nn.SiLU()
        self.norm1 = VidTokLayerNorm(dim=in_channels, eps=1e-6)
        self.conv1 = conv_cls(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if temb_channels > 0:
            self.temb_proj = nn.Linear(temb_channels, out_channels)
        self.norm2 = VidTokLayerNorm(dim=out_channels, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = conv_cls(out_channels, out_channels, kernel_size=3, stride=1, padding=1)
        if in_channels != out_channels:
            if conv_shortcut:
                self.conv_shortcut = conv_cls(in_channels, out_channels, kernel_size=3, stride=1, padding=1)
            else:
                self.nin_shortcut = conv_cls(in_channels, out_channels, kernel_size=1, stride=1, padding=0)

    @property
    def shortcut(self) -> Optional[nn.Module]:
        """The conv that maps the input to the output's channels (None when they are the same)."""
        if self.in_channels == self.out_channels:
            return None
        return self.conv_shortcut if self.use_conv_shortcut else self.nin_shortcut

    def forward(self, x: torch.Tensor, temb: Optional[torch.Tensor] = None) -> torch.Tensor:
        h = self.conv1(self.nonlinearity(self.norm1(x)))
        if temb is not None:  # (N, temb_channels), added per channel (2D blocks); VidTok passes None
            h = h + self.temb_proj(self.nonlinearity(temb))[:, :, None, None]
        h = self.conv2(self.dropout(self.nonlinearity(self.norm2(h))))
        if self.shortcut is not None:
            x = self.shortcut(x)
        return x + h


def _factorised(blk2d: nn.Module, blk1d: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A 2D block on every frame, then a temporal 1D block on every pixel, of (B,C,T,H,W)."""
    b, _, _, h, w = x.shape
    x = _from_frames(blk2d(_to_frames(x), None), b)
    return _from_pixels(blk1d(_to_pixels(x), None), b, h, w)


def _mid(n_ch: int, dropout: float, is_causal: bool) -> nn.Module:
    """3D ResNet block, attention, 3D ResNet block (keys ``mid.block_1``, ``mid.attn_1``, ``mid.block_2``)."""
    mid = nn.Module()
    mid.block_1 = VidTokResnetBlock(n_ch, n_ch, temb_channels=0, dropout=dropout, btype="3d", is_causal=is_causal)
    mid.attn_1 = VidTokAttnBlock(n_ch, is_causal=is_causal)
    mid.block_2 = VidTokResnetBlock(n_ch, n_ch, temb_channels=0, dropout=dropout, btype="3d", is_causal=is_causal)
    return mid


def _run_mid(mid: nn.Module, h: torch.Tensor) -> torch.Tensor:
    return mid.block_2(mid.attn_1(mid.block_1(h, None)), None)


def _level(blocks: list[nn.Module]) -> nn.Module:
    """One resolution level: ``.block`` (a ModuleList) and an empty ``.attn`` list, as in the official code."""
    lvl = nn.Module()
    lvl.block = nn.ModuleList(blocks)
    lvl.attn = nn.ModuleList()
    return lvl


# ----------------------------------------------------------------------------- encoder / decoder
class VidTokEncoder3D(nn.Module):
    """Video (B,in_channels,T,H,W) -> latent (B,z_channels or 2*z_channels,T',H',W').

    Each level: ``num_res_blocks`` pairs of a per-frame 2D block (``down[i].block``) and a temporal
    block (``down_temporal[i].block``); then, for levels in ``spatial_ds``, 2x spatial downsampling
    and, for those also in ``tempo_ds``, 2x temporal downsampling. Then mid blocks and the output conv.
    """

    def __init__(self, in_channels: int, ch: int, ch_mult: Sequence[int] = (1, 2, 4, 8), num_res_blocks: int = 2,
                 dropout: float = 0.0, z_channels: int = 4, double_z: bool = True,
                 spatial_ds: Optional[list] = None, tempo_ds: Optional[list] = None, is_causal: bool = True):
        super().__init__()
        n = len(ch_mult)
        self.is_causal = is_causal
        self.ch, self.temb_ch = ch, 0
        self.num_resolutions, self.num_res_blocks = n, num_res_blocks
        self.in_channels = in_channels
        self.nonlinearity = nn.SiLU()
        conv3d = VidTokCausalConv3d if is_causal else nn.Conv3d
        self.conv_in = conv3d(in_channels, ch, kernel_size=3, stride=1, padding=1)
        self.in_ch_mult = (1,) + tuple(ch_mult)
        self.spatial_ds = list(range(n - 1)) if spatial_ds is None else spatial_ds
        self.tempo_ds = [n - 2, n - 3] if tempo_ds is None else tempo_ds
        self.down, self.down_temporal = nn.ModuleList(), nn.ModuleList()
        block_in = ch
        for i in range(n):
            block_out = ch * ch_mult[i]
            spatial, temporal = [], []
            for _ in range(num_res_blocks):
                spatial.append(VidTokResnetBlock(block_in, block_out, temb_channels=0, dropout=dropout, btype="2d"))
                temporal.append(VidTokResnetBlock(block_out, block_out, temb_channels=0, dropout=dropout,
                                                  btype="1d", is_causal=is_causal))
                block_in = block_out
            down, down_temporal = _level(spatial), _level(temporal)
            if i in self.spatial_ds:
                down.downsample = VidTokDownsample2D(block_in)
                if i in self.tempo_ds:
                    down_temporal.downsample = VidTokDownsample3D(block_in, block_in, is_causal=is_causal)
            self.down.append(down)
            self.down_temporal.append(down_temporal)
        self.mid = _mid(block_in, dropout, is_causal)
        self.norm_out = VidTokLayerNorm(dim=block_in, eps=1e-6)
        self.conv_out = conv3d(block_in, 2 * z_channels if double_z else z_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for i in range(self.num_resolutions):
            for blk2d, blk1d in zip(self.down[i].block, self.down_temporal[i].block):
                h = _factorised(blk2d, blk1d, h)
            if i in self.spatial_ds:
                h = _from_frames(self.down[i].downsample(_to_frames(h)), h.shape[0])
                if i in self.tempo_ds:
                    h = self.down_temporal[i].downsample(h)
        h = _run_mid(self.mid, h)
        return self.conv_out(self.nonlinearity(self.norm_out(h)))


class VidTokDecoder3D(nn.Module):
    """Latent (B,z_channels,T',H',W') -> video (B,out_channels,T,H,W); the encoder's mirror.

    Input conv and mid blocks, then from the top level down: ``num_res_blocks + 1`` pairs of 2D and
    temporal blocks (``up[i].block``, ``up_temporal[i].block``), then for levels in ``spatial_us``
    2x spatial upsampling and, for those also in ``tempo_us``, 2x temporal upsampling.
    """

    def __init__(self, ch: int, ch_mult: Sequence[int] = (1, 2, 4, 8), num_res_blocks: int = 2,
                 dropout: float = 0.0, z_channels: int = 4, out_channels: int = 3,
                 spatial_us: Optional[list] = None, tempo_us: Optional[list] = None, is_causal: bool = True):
        super().__init__()
        n = len(ch_mult)
        self.is_causal = is_causal
        self.ch, self.temb_ch = ch, 0
        self.num_resolutions, self.num_res_blocks = n, num_res_blocks
        self.nonlinearity = nn.SiLU()
        conv3d = VidTokCausalConv3d if is_causal else nn.Conv3d
        block_in = ch * ch_mult[-1]
        self.conv_in = conv3d(z_channels, block_in, kernel_size=3, stride=1, padding=1)
        self.mid = _mid(block_in, dropout, is_causal)
        self.spatial_us = list(range(1, n)) if spatial_us is None else spatial_us
        self.tempo_us = [1, 2] if tempo_us is None else tempo_us
        ups, ups_temporal = [], []
        n_temp = 1  # frames standing for the first input frame at a temporal upsampling (top level first)
        for i in reversed(range(n)):
            block_out = ch * ch_mult[i]
            spatial, temporal = [], []
            for _ in range(num_res_blocks + 1):
                spatial.append(VidTokResnetBlock(block_in, block_out, temb_channels=0, dropout=dropout, btype="2d"))
                temporal.append(VidTokResnetBlock(block_out, block_out, temb_channels=0, dropout=dropout,
                                                  btype="1d", is_causal=is_causal))
                block_in = block_out
            up, up_temporal = _level(spatial), _level(temporal)
            if i in self.spatial_us:
                up.upsample = VidTokUpsample2D(block_in)
            if i in self.tempo_us:
                up_temporal.upsample = VidTokUpsample3D(block_in, block_in, num_temp_upsample=n_temp,
                                                        is_causal=is_causal)
                n_temp *= 2
            ups.append(up)
            ups_temporal.append(up_temporal)
        self.up, self.up_temporal = nn.ModuleList(ups[::-1]), nn.ModuleList(ups_temporal[::-1])  # index = level
        self.norm_out = VidTokLayerNorm(dim=block_in, eps=1e-6)
        self.conv_out = conv3d(block_in, out_channels, kernel_size=3, stride=1, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = _run_mid(self.mid, self.conv_in(z))
        for i in reversed(range(self.num_resolutions)):
            for blk2d, blk1d in zip(self.up[i].block, self.up_temporal[i].block):
                h = _factorised(blk2d, blk1d, h)
            if i in self.spatial_us:
                h = _from_frames(self.up[i].upsample(_to_frames(h)), h.shape[0])
                if i in self.tempo_us:
                    h = self.up_temporal[i].upsample(h)
        return self.conv_out(self.nonlinearity(self.norm_out(h)))
