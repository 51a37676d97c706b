"""Channels-last forward of the VidTok encoder/decoder for CPUs: the same function, fewer copies.

diffusers' encoder/decoder move every activation between a per-frame layout (B*T,C,H,W)
for the 2D blocks and a per-pixel layout (B*H*W,C,T) for the temporal 1D blocks: two full
copies per block, plus a contiguous copy inside each LayerNorm, and the encoder keeps
every level's output alive in a list. Here activations stay in one channels-last 3D tensor
(memory order B,T,H,W,C): the per-frame view (B*T,C,H,W) of it is free, LayerNorm over C
reads contiguous rows, and each temporal Conv1d runs as a Conv3d with a (k,1,1) kernel on
the same memory, so oneDNN gets channels-last inputs and weights without reorders.

Parameters, state-dict keys, caches (v1.1 tiling) and results are unchanged (equal to the
plain path within float rounding; ``tests/test_vidtok_fast.py``).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.models.autoencoders.autoencoder_vidtok import (
    VidTokCausalConv1d,
    VidTokDecoder3D,
    VidTokEncoder3D,
    VidTokResnetBlock,
)

CL3D = torch.channels_last_3d


def _per_frame(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a 2D layer to every frame of (B,C,T,H,W); a view both ways when x is channels-last."""
    b, c, t, h, w = x.shape
    y = fn(x.transpose(1, 2).reshape(b * t, c, h, w))
    return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)


def _temporal_conv(mod: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A (causal) Conv1d over time applied to (B,C,T,H,W) as a Conv3d with kernel (k,1,1)."""
    if isinstance(mod, nn.Conv1d):  # non-causal models: symmetric zero padding
        conv, pad = mod, mod.padding[0]
    else:
        conv, pad = mod.conv, 0
        x = _causal_pad(mod, x)
    w = conv.weight.unsqueeze(-1).unsqueeze(-1)
    return F.conv3d(x, w, conv.bias, stride=(conv.stride[0], 1, 1), padding=(pad, 0, 0), dilation=(conv.dilation[0], 1, 1))


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


def _temporal_block(blk: VidTokResnetBlock, x: torch.Tensor) -> torch.Tensor:
    """VidTokResnetBlock(btype='1d') on (B,C,T,H,W): norm, SiLU, conv over time, twice, plus the residual."""
    h = _temporal_conv(blk.conv1, blk.nonlinearity(blk.norm1(x)))
    h = _temporal_conv(blk.conv2, blk.nonlinearity(blk.norm2(h)))
    if blk.in_channels != blk.out_channels:
        x = _temporal_conv(blk.conv_shortcut if blk.use_conv_shortcut else blk.nin_shortcut, x)
    return x + h


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=CL3D)


def _level(h: torch.Tensor, spatial: nn.ModuleList, temporal: nn.ModuleList) -> torch.Tensor:
    """One resolution level: each per-frame 2D ResNet block followed by its temporal block."""
    for blk2d, blk1d in zip(spatial, temporal):
        h = _per_frame(lambda f, blk=blk2d: blk(f, None), h)
        h = _temporal_block(blk1d, h)
    return h


def _resample(h: torch.Tensor, spatial: nn.Module, temporal: nn.Module | None) -> torch.Tensor:
    """Spatial down/upsampling per frame, then the temporal one where this level has it."""
    h = _per_frame(spatial, h)
    return h if temporal is None else _cl(temporal(h))


class FastEncoder(VidTokEncoder3D):
    """VidTokEncoder3D with the channels-last forward (inference only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = _cl(self.conv_in(_cl(x)))
        for i in range(self.num_resolutions):
            h = _level(h, self.down[i].block, self.down_temporal[i].block)
            if i in self.spatial_ds:
                temporal = self.down_temporal[i].downsample if i in self.tempo_ds else None
                h = _resample(h, self.down[i].downsample, temporal)
        h = self.mid.block_2(self.mid.attn_1(self.mid.block_1(h, None)), None)
        return self.conv_out(self.nonlinearity(self.norm_out(h))).contiguous()


class FastDecoder(VidTokDecoder3D):
    """VidTokDecoder3D with the channels-last forward (inference only)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = _cl(self.conv_in(_cl(z)))
        h = _cl(self.mid.block_2(self.mid.attn_1(self.mid.block_1(h, None)), None))
        for i in reversed(range(self.num_resolutions)):
            h = _level(h, self.up[i].block, self.up_temporal[i].block)
            if i in self.spatial_us:
                temporal = self.up_temporal[i].upsample if i in self.tempo_us else None
                h = _resample(h, self.up[i].upsample, temporal)
        return self.conv_out(self.nonlinearity(self.norm_out(h))).contiguous()


_FAST = {VidTokEncoder3D: FastEncoder, VidTokDecoder3D: FastDecoder}
_PLAIN = {v: k for k, v in _FAST.items()}


def use_channels_last(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Switch a VidTokAutoencoder between the channels-last forward and diffusers' own, in place.

    Conv weights move to channels-last memory (Conv3d: ``channels_last_3d``, Conv2d: ``channels_last``)
    or back; values, parameters and state-dict keys stay the same.
    """
    swap = _FAST if enabled else _PLAIN
    for part in (model.encoder, model.decoder):
        part.__class__ = swap.get(type(part), type(part))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            fmt = (CL3D if m.weight.ndim == 5 else torch.channels_last) if enabled else torch.contiguous_format
            m.weight.data = m.weight.data.contiguous(memory_format=fmt)
    return model
