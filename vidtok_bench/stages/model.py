"""The model stage: fit clips to the tokenizer's frame rule, encode and decode under the run's
precision scope, timed separately (synchronised on GPU), and count the FLOPs of each batch shape
once (on the tokenizer's meta-device copy), when the run's totals are read: after the clips, so the
count never runs beside them (running a model on meta tensors imports torch._dynamo through
torch's Python meta kernels: ~70 MB resident that would otherwise add to the run's peak)."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from ..allocator import release_after_batch
from ..flops import meta_flops
from ..frames import pad_frames
from ..precision import Precision
from ..tokenizer import Tokenizer


@dataclass
class ModelOutput:
    recon: torch.Tensor  # (B,3,T,H,W) float32 on the device, cut back to the clips' length
    bits: float  # bits of the whole batch's latent
    pixels: int  # pixels of the encoded (padded) batch
    padded: int  # frames added per clip to fit the frame rule
    encode_s: float
    decode_s: float
    #: the latent as ``tokenizer.encode`` returned it (token ids, float latent, codec streams), for latent metrics
    latent: Any = None


def _sync(device: torch.device) -> None:
    """Wait for this thread's CUDA stream only: metric work overlapped on another stream is not model time."""
    if device.type == "cuda":
        torch.cuda.current_stream(device).synchronize()


class ModelStage:
    def __init__(self, tokenizer: Tokenizer, device: torch.device, precision: Precision):
        self.tokenizer, self.device = tokenizer, device
        tokenizer.check_values = False  # the runner's clips are its preprocessing's, in [-1,1] by construction
        #: a tokenizer forced to a precision (tokenizer.precision=fp32) wins over the run's
        self.precision = tokenizer.precision or precision
        self.encode_s = self.decode_s = 0.0
        self.clips = self.frames = 0
        #: calls per batch shape, counted into FLOPs when ``encode_flops``/``decode_flops`` are read
        self._calls: dict[tuple[int, ...], int] = {}
        self._flops: dict[tuple[int, ...], dict[str, int] | None] = {}

    def _total(self, phase: str) -> float | None:
        """FLOPs of every ``phase`` call so far; None when a batch shape could not be counted."""
        total = 0.0
        for shape, n in self._calls.items():
            if shape not in self._flops:
                self._flops[shape] = meta_flops(self.tokenizer, shape)
            f = self._flops[shape]
            if f is None:
                return None
            total += n * f[phase]
        return total

    @property
    def encode_flops(self) -> float | None:
        return self._total("encode")

    @property
    def decode_flops(self) -> float | None:
        return self._total("decode")

    def __call__(self, video: torch.Tensor, fps: float | None = None) -> ModelOutput:
        """``video``: (B,3,T,H,W) in [-1,1] on the CPU; ``fps``: the clips' frame rate."""
        t = video.shape[2]
        fitted = self.tokenizer.frame_rule.fit_up(t)
        x = pad_frames(video, fitted).to(self.device, non_blocking=True)
        self._calls[tuple(x.shape)] = self._calls.get(tuple(x.shape), 0) + 1
        self.tokenizer.frame_rate = fps
        with torch.inference_mode(), self.precision.scope(self.device):
            _sync(self.device)
            t0 = time.perf_counter()
            latent = self.tokenizer.encode(x)
            _sync(self.device)
            t1 = time.perf_counter()
            release_after_batch(self.device)  # untimed: the encoder's freed heap memory, before the decoder's peak
            t1b = time.perf_counter()
            recon = self.tokenizer.decode(latent)
            _sync(self.device)
            t2 = time.perf_counter()
        release_after_batch(self.device)
        self.encode_s += t1 - t0
        self.decode_s += t2 - t1b
        self.clips += video.shape[0]
        self.frames += video.shape[0] * t
        return ModelOutput(recon.float()[:, :, :t], self.tokenizer.latent_bits(latent),
                           x.shape[0] * x.shape[2] * x.shape[3] * x.shape[4], fitted - t, t1 - t0, t2 - t1b, latent)
