"""The preprocess stage: a batch of clips -> the model's input, float32 (B, 3, T, h, w) in [-1, 1].

Float clips (the CPU pipeline, ``preprocess_on=cpu``) were resized while decoding and are only
stacked (one clip: a view). uint8 clips (``preprocess_on=device``) hold the sampled source-size frames: they are copied
to the run's device (from pinned memory and non-blocking on a GPU) and resized and cropped there by
:func:`~vidtok_bench.video.resize.preprocess_frames`, the same definition the CPU pipeline uses (on
the CPU the values are identical; on a GPU within 1e-5, tested where CUDA is available). On a GPU, clips of
8-bit YUV 4:2:0 videos carry the decoded planes (half the bytes of RGB, and no RGB conversion on the host's
cores) and are converted to RGB here first, by a table that reproduces the CPU conversion exactly
(:mod:`vidtok_bench.video.yuv_lut`).
"""
from __future__ import annotations

import time

import torch

from ..data import Clip, Preprocess
from ..video.resize import FrameResizer, preprocess_frames


def clip_frames_for(preprocess_on: str, device: torch.device) -> str:
    """What the dataset's clips should carry (``vidtok_bench.video.decode.CLIP_FRAMES``) for a resolved choice."""
    if preprocess_on != "device":
        return "float"
    # on a CPU, FFmpeg's own conversion is the cheaper way to the same RGB
    return "yuv_pinned" if device.type == "cuda" else "uint8"


class PreprocessStage:
    def __init__(self, preprocess: Preprocess, device: torch.device):
        self.resizer = FrameResizer(preprocess.size, preprocess.crop, preprocess.resize)
        self.device = torch.device(device)
        #: seconds spent here (copies queued and resizes run; on a GPU not synchronised)
        self.seconds = 0.0
        self.frames = 0  # frames resized here

    def __call__(self, clips: list[Clip]) -> torch.Tensor:
        first = clips[0].frames
        if first.dtype != torch.uint8:
            # one clip (the default batch): a view, not a second clip-sized copy held beside the clip while the
            # batch is modelled and scored
            return first.unsqueeze(0) if len(clips) == 1 else torch.stack([c.frames for c in clips])
        t0 = time.perf_counter()
        b, t = len(clips), first.shape[1]
        parts = [self._rgb(c) for c in clips]
        u8 = parts[0] if b == 1 else torch.cat(parts)
        x = preprocess_frames(u8, self.resizer)  # (3, B*T, h, w)
        out = x.view(3, b, t, *x.shape[-2:]).transpose(0, 1).contiguous()
        self.seconds += time.perf_counter() - t0
        self.frames += b * t
        return out

    def _rgb(self, clip: Clip) -> torch.Tensor:
        """A uint8 clip's (T, H, W, 3) RGB frames on the device."""
        if clip.yuv is not None:  # (1, T, N) packed YUV 4:2:0 -> its exact RGB, on the device
            w, h = clip.source_size
            return clip.yuv.to_rgb(clip.frames[0].to(self.device, non_blocking=True), h, w)
        # a uint8 clip's frames are a (3, T, H, W) view of (T, H, W, 3) memory: permuting back is free
        return clip.frames.permute(1, 2, 3, 0).to(self.device, non_blocking=True)
