"""Weight-free resampling tokenizer: the no-learning floor at a given compression.

``trilinear_488`` keeps VidTok's causal layout: the first frame alone, then every group of
``t`` frames averaged (box filter in time), each frame downsampled spatially with an
antialiased bilinear filter; decoding interpolates linearly in time between the latent
frames' centres and bilinearly in space.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vidtok_bench.errors import ConfigError
from vidtok_bench.frames import FrameRule
from vidtok_bench.registry import register_tokenizer
from vidtok_bench.tokenizer import Tokenizer


@register_tokenizer("trilinear")
class TrilinearTokenizer(Tokenizer):
    causal = True
    latent_channels = 3

    def __init__(self, t: int = 4, h: int = 8, w: int = 8, bits_per_element: float = 16.0, **kw):
        super().__init__(**kw)
        for key, v in (("t", t), ("h", h), ("w", w)):
            if int(v) < 1:
                raise ConfigError(f"tokenizer '{self.name}': {key}={v} must be >= 1 (a compression factor)")
        self.compression = (int(t), int(h), int(w))
        self.frame_rule = FrameRule(multiple=int(t), remainder=1, minimum=1)
        self.preferred_clip_len = 4 * int(t) + 1
        self.spatial_multiple = max(int(h), int(w))
        self.bits_per_element = float(bits_per_element)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.check_input(video)
        tf, hf, wf = self.compression
        x = video.to(self.device, torch.float32)
        b, c, t, hh, ww = x.shape
        # temporal box filter: frame 0 alone, then groups of tf
        first, rest = x[:, :, :1], x[:, :, 1:]
        if rest.shape[2]:
            rest = rest.reshape(b, c, -1, tf, hh, ww).mean(dim=3)
            x = torch.cat([first, rest], dim=2)
        else:
            x = first
        tl = x.shape[2]
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * tl, c, hh, ww)
        small = F.interpolate(frames, size=(hh // hf, ww // wf), mode="bilinear", antialias=True, align_corners=False)
        return small.reshape(b, tl, c, hh // hf, ww // wf).permute(0, 2, 1, 3, 4).contiguous()

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        tf, hf, wf = self.compression
        b, c, tl, h, w = latent.shape
        t = 1 + (tl - 1) * tf
        # centre time of each latent frame: 0 for the first, then the middle of each group
        centres = torch.tensor([0.0] + [1 + j * tf + (tf - 1) / 2 for j in range(tl - 1)], device=latent.device)
        times = torch.arange(t, dtype=torch.float32, device=latent.device)
        idx = torch.searchsorted(centres, times, right=True).clamp(1, max(tl - 1, 1)) - 1
        if tl == 1:
            up_t = latent.expand(-1, -1, t, -1, -1)
        else:
            lo, hi = centres[idx], centres[idx + 1]
            a = ((times - lo) / (hi - lo)).clamp(0, 1).view(1, 1, t, 1, 1)
            up_t = latent[:, :, idx] * (1 - a) + latent[:, :, idx + 1] * a
        frames = up_t.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        big = F.interpolate(frames, size=(h * hf, w * wf), mode="bilinear", align_corners=False)
        return big.reshape(b, t, c, h * hf, w * wf).permute(0, 2, 1, 3, 4).clamp(-1, 1).contiguous()
