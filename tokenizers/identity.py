"""The identity tokenizer: reconstruction equals input (sanity check and metric ceiling)."""
from __future__ import annotations

import torch

from vidtok_bench.frames import FrameRule
from vidtok_bench.registry import register_tokenizer
from vidtok_bench.tokenizer import Tokenizer


@register_tokenizer("identity")
class IdentityTokenizer(Tokenizer):
    compression = (1, 1, 1)
    causal = True
    frame_rule = FrameRule()
    preferred_clip_len = 17
    latent_channels = 3
    bits_per_element = 8.0  # the uint8 source

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.check_input(video)
        return video.to(self.device)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return latent
