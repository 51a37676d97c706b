"""VidTok autoencoders (v1.0 causal, v1.0 non-causal, v1.1 causal) as pure torch modules.

The layer graph and state-dict key names are those of the official checkpoints. The
building blocks are the project's own (:mod:`.vidtok_blocks`, plain torch): the same key
names and the same functions as the official code for v1.1 causal and v1.0 non-causal
models, cross-checked against diffusers' implementation
(``diffusers.models.autoencoders.autoencoder_vidtok``) in ``tests/test_vidtok_blocks.py``;
importing diffusers itself would cost 3-5 s and ~250 MB per process. Those blocks do not
compute v1.0 *causal* models, so :func:`_to_v10_causal` swaps the temporal layers for the
v1.0 semantics (checked against fixtures produced by the official code):

* causal convolutions pad the past with zeros (v1.1: replicate the first frame / caches);
* temporal downsampling average-pools over a zero-padded past;
* temporal upsampling is nearest-neighbour (v1.1: trilinear, first frames separately);
* the encoder prepends ``tdf - 1`` copies of the first frame when ``T % tdf != 0`` and the
  decoder drops the first ``tdf - 1`` output frames.

The top-level :class:`VidTokAutoencoder` owns the orchestration (padding, posterior,
FSQ rounding, v1.1 temporal tiling with causal caches and overlap) so nothing depends on
diffusers' ``AutoencoderVidTok`` wrapper, whose FSQ regularizer materialises a codebook.
"""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from .vidtok_arch import VidTokArch  # noqa: F401  (re-exported)
from .vidtok_blocks import (
    VidTokCausalConv1d,
    VidTokCausalConv3d,
    VidTokDecoder3D,
    VidTokDownsample3D,
    VidTokEncoder3D,
    VidTokUpsample3D,
    avg_pool,
    time_x2,
)
from .vidtok_fsq import FSQ

LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


# ----------------------------------------------------------------------------- v1.0 causal layers
class _ZeroPastConv3d(VidTokCausalConv3d):
    """v1.0 causal 3D conv: zeros for the past frames, no cache."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (*self.spatial_padding[:4], self.time_pad, 0)))


class _ZeroPastConv1d(VidTokCausalConv1d):
    """v1.0 causal temporal conv: zeros for the past frames, no cache."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.time_pad, 0)))


class _V10TimeDownsample(VidTokDownsample3D):
    """v1.0 causal 2x temporal downsampling: average over a zero-padded past, mixed with a strided conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.mix_factor)
        pooled = avg_pool(self.avg_pool, F.pad(x, (0, 0, 0, 0, 1, 0)))
        return alpha * pooled + (1 - alpha) * self.conv(x)


class _V10TimeUpsample(VidTokUpsample3D):
    """v1.0 causal 2x temporal upsampling: nearest repetition, mixed with a causal conv."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = torch.sigmoid(self.mix_factor)
        x = time_x2(x, "nearest")
        return alpha * x + (1 - alpha) * self.conv(x)


_V10_SWAPS = {
    VidTokCausalConv3d: _ZeroPastConv3d,
    VidTokCausalConv1d: _ZeroPastConv1d,
    VidTokDownsample3D: _V10TimeDownsample,
    VidTokUpsample3D: _V10TimeUpsample,
}


def _to_v10_causal(module: nn.Module) -> None:
    """Give every temporal layer its v1.0 forward; parameters and key names are untouched."""
    for sub in module.modules():
        new_cls = _V10_SWAPS.get(type(sub))
        if new_cls is not None:
            sub.__class__ = new_cls


# ----------------------------------------------------------------------------- the autoencoder
class VidTokAutoencoder(nn.Module):
    """Encoder + decoder with official key names (``encoder.*``, ``decoder.*``) and inference logic."""

    def __init__(self, arch: VidTokArch):
        super().__init__()
        self.arch = arch
        a = arch
        self.encoder = VidTokEncoder3D(
            in_channels=3, ch=a.ch, ch_mult=list(a.ch_mult), num_res_blocks=a.num_res_blocks, dropout=0.0,
            z_channels=a.z_channels, double_z=a.regularizer == "kl", spatial_ds=a.spatial_ds_list,
            tempo_ds=a.tempo_ds_list, is_causal=a.causal,
        )
        self.decoder = VidTokDecoder3D(
            ch=a.ch, ch_mult=list(a.ch_mult), num_res_blocks=a.num_res_blocks, dropout=0.0,
            z_channels=a.z_channels, out_channels=3, spatial_us=a.spatial_us_list, tempo_us=a.tempo_us_list,
            is_causal=a.causal,
        )
        if a.causal and a.version == "1.0":
            _to_v10_causal(self)
        self.fsq = FSQ(a.levels) if a.regularizer == "fsq" else None
        self.tdf = a.time_factor

    # ------------------------------------------------------------------ cache control (v1.1)
    def _set_first_chunk(self, first: bool) -> None:
        for m in self.modules():
            if hasattr(m, "is_first_chunk"):
                m.is_first_chunk = first

    def _clear_caches(self, part: nn.Module) -> None:
        for m in part.modules():
            if hasattr(m, "causal_cache"):
                m.causal_cache = None

    def _set_cache_offsets(self, overlap: bool) -> None:
        """Frames of one latent step at each decoder layer's rate (what an overlapping chunk re-decodes)."""
        for m in self.decoder.modules():
            if hasattr(m, "cache_offset"):
                m.cache_offset = 1 if overlap else 0
        if not overlap:
            return
        us = self.arch.tempo_us_list
        n = self.arch.n_levels

        def setoff(mod: nn.Module, k: int) -> None:
            for m in mod.modules():
                if hasattr(m, "cache_offset"):
                    m.cache_offset = k

        for i in range(n):
            level = self.decoder.up_temporal[i]
            setoff(level, 2 ** len([j for j in us if j > i]))  # its blocks run before its own upsampling
            if hasattr(level, "upsample"):
                setoff(level.upsample, 2 ** len([j for j in us if j >= i]))
        setoff(self.decoder.conv_out, self.tdf)

    # ------------------------------------------------------------------ raw encoder / decoder
    def _encoder(self, x: torch.Tensor) -> torch.Tensor:
        """Official encoder incl. its front padding; returns raw moments (KL) or pre-quantisation z (FSQ)."""
        t = x.shape[2]
        if self.arch.causal and t % self.tdf:
            pad = self.tdf - 1 if self.arch.version == "1.0" else self.tdf - t % self.tdf
            x = torch.cat([x[:, :, :1].expand(-1, -1, pad, -1, -1), x], dim=2)
        return self.encoder(x)

    def encode_raw(self, x: torch.Tensor, tiling: bool = False, t_chunk: int = 16) -> torch.Tensor:
        """Raw encoder output for a whole clip, or temporally tiled (v1.1 long-video mode)."""
        if self.arch.causal and self.arch.version == "1.1":
            self._clear_caches(self.encoder)
            self._set_first_chunk(True)
        if not tiling:
            return self._encoder(x)
        self._require_tiling()
        out = []
        for idx, (s, e) in enumerate(_chunks(x.shape[2], t_chunk)):
            self._set_first_chunk(idx == 0)
            out.append(self._encoder(x[:, :, s:e]))
        self._set_first_chunk(True)
        return torch.cat(out, dim=2)

    def decode_latent(self, z: torch.Tensor, tiling: bool = False, t_chunk: int = 16) -> torch.Tensor:
        """Latent (B,z,T',H',W') -> video; causal models give (T'-1)*tdf+1 frames, non-causal T'*tdf."""
        v11 = self.arch.causal and self.arch.version == "1.1"
        if v11:
            self._clear_caches(self.decoder)
            self._set_first_chunk(True)
        if tiling:
            self._require_tiling()
            out = self._tiled_decode(z, max(1, t_chunk // self.tdf))
        else:
            out = self.decoder(z)
        if self.arch.causal:
            out = out[:, :, self.tdf - 1:]
        return out

    def _tiled_decode(self, z: torch.Tensor, chunk: int) -> torch.Tensor:
        n = z.shape[2]
        self._set_cache_offsets(overlap=True)
        try:
            out = []
            for idx, (s, e) in enumerate(_chunks(n, chunk)):
                self._set_first_chunk(idx == 0)
                overlap = e + 1 <= n
                piece = self.decoder(z[:, :, s:e + 1] if overlap else z[:, :, s:e])
                out.append(piece[:, :, :-self.tdf] if overlap else piece)
            return torch.cat(out, dim=2)
        finally:
            self._set_cache_offsets(overlap=False)
            self._set_first_chunk(True)
            self._clear_caches(self.decoder)

    def _require_tiling(self) -> None:
        if not (self.arch.causal and self.arch.version == "1.1"):
            raise ValueError("temporal tiling is the v1.1 long-video mode; v1.0 models evaluate independent clips")

    # ------------------------------------------------------------------ regularizers
    @staticmethod
    def split_moments(moments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = torch.chunk(moments, 2, dim=1)
        return mean, torch.clamp(logvar, LOGVAR_MIN, LOGVAR_MAX)


def _chunks(t: int, size: int) -> list[tuple[int, int]]:
    """Official v1.1 tiling: the first frame alone, then chunks of ``size``."""
    spans, start = [(0, min(1, t))], 1
    while start < t:
        end = min(t, start + size)
        spans.append((start, end))
        start = end
    return spans


def build_vidtok(arch: VidTokArch, device: str | torch.device = "cpu") -> VidTokAutoencoder:
    """Build the model; ``device='meta'`` gives the state-dict layout without allocating weights."""
    with torch.device(device):
        # .to(): the blend factors are made with torch.Tensor([...]), which ignores the device context
        return VidTokAutoencoder(arch).to(device).eval()


def state_dict_shapes(model: nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}

