"""Short-side resize + centre crop of single frames, the way the VidTok evaluator does it.

The VidTok evaluator converts uint8 frames to float in [0, 1], applies torchvision's
``transforms.v2.Resize(size, antialias=True)`` (bilinear) and then ``CenterCrop(size)``.
Ground truth resized with another filter gives different metric values, so the filter is
part of the protocol. For float tensors torchvision v2 calls
``torch.nn.functional.interpolate(mode="bilinear", antialias=True, align_corners=False)``;
we call the same function on one frame at a time (tests/test_video_resize.py shows the
values are identical to torchvision v2 on real frames), so a whole video's full-resolution
frames are never held as float. :func:`preprocess_frames` is the whole step (uint8 -> [0, 1] ->
resize -> crop -> [-1, 1]) on any device, for ``preprocess_on=device``; it is made of the same
three pieces the CPU pipeline runs per frame (:func:`to_unit`, :meth:`FrameResizer.resize_crop`,
:func:`to_signed`), so there is one definition.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import VideoError, check_choice

#: filter name -> torch interpolate mode
_MODES = {"bilinear_antialias": "bilinear", "bicubic_antialias": "bicubic"}


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """Output (h, w) of a short-side resize to ``size``; like torchvision, the long side is truncated."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def center_crop_anchor(height: int, width: int, crop_h: int, crop_w: int) -> tuple[int, int]:
    """(top, left) of a centre crop, rounded as torchvision's CenterCrop rounds (Python round)."""
    return int(round((height - crop_h) / 2.0)), int(round((width - crop_w) / 2.0))


class FrameResizer:
    """Turns one uint8 RGB frame (H, W, 3) into a float32 (3, h, w) tensor in [0, 1].

    ``size``: short side after resize (None: native size); ``crop``: 'center' crops to
    ``size`` x ``size`` after the resize, 'none' keeps the aspect ratio; ``filter``: one of
    ``vidtok_bench.data.RESIZE_FILTERS`` ('none' only crops, and then the frame must be at
    least ``size`` on each side).
    """

    def __init__(self, size: int | None, crop: str = "center", filter: str = "bilinear_antialias"):
        check_choice("dataset.resize", filter, (*_MODES, "none"))
        check_choice("dataset.crop", crop, ("center", "none"))
        self.size = None if size is None else int(size)
        self.crop = crop
        self.filter = filter

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the frames this resizer produces from (height, width) input."""
        if self.size is None:
            return height, width
        if self.filter == "none":
            return (self.size, self.size) if self.crop == "center" else (height, width)
        h, w = resized_size(height, width, self.size)
        return (self.size, self.size) if self.crop == "center" else (h, w)

    def check(self, height: int, width: int, source: str) -> None:
        """Raise VideoError when frames of this size cannot give the requested crop."""
        if self.size is not None and self.filter == "none" and self.crop == "center":
            if height < self.size or width < self.size:
                raise VideoError(
                    source, f"frames are {width}x{height}, smaller than the crop {self.size}x{self.size} (resize=none)"
                )

    def resize_crop(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, 3, H, W) in [0, 1] (any device, any memory format) -> (N, 3, h, w) in [0, 1].

        The protocol's definition: antialiased resize of the short side (``filter``), clamped to
        [0, 1] for bicubic, then the centre crop. Frames are independent (interpolate computes
        each output pixel from its own frame only; tests check that a batch equals its frames
        one at a time, bit for bit, on the CPU).
        """
        height, width = x.shape[-2:]
        if self.size is not None and self.filter != "none":
            h, w = resized_size(height, width, self.size)
            if (h, w) != (height, width):  # torchvision returns the image unchanged then
                if w == 1:  # PyTorch's channels-last antialiased kernel is wrong for a 1-pixel-wide output
                    x = x.contiguous()  # (off by up to ~0.45 here, torch 2.14); the frames' views are channels-last
                x = F.interpolate(x, size=(h, w), mode=_MODES[self.filter], align_corners=False, antialias=True)
                if self.filter == "bicubic_antialias":
                    x = x.clamp_(0.0, 1.0)  # bicubic overshoots; frames must stay in range
            height, width = h, w
        if self.size is not None and self.crop == "center":
            if height < self.size or width < self.size:
                raise VideoError("frame", f"frames are {width}x{height}, smaller than the crop {self.size}x{self.size}")
            top, left = center_crop_anchor(height, width, self.size, self.size)
            x = x[..., top : top + self.size, left : left + self.size]
        return x

    def __call__(self, rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (H, W, 3) RGB -> float32 (3, h, w) in [0, 1]; only this one frame is made float."""
        # the (1, 3, H, W) view is channels-last in memory, which interpolate takes directly (values tested equal)
        return self.resize_crop(to_unit(rgb).permute(2, 0, 1).unsqueeze(0))[0].contiguous()


def to_unit(rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1], same shape and device, as the evaluator's ``frames.float() / 255.``.

    On the CPU the uint8 -> float32 cast is numpy's (exact, and several times faster than torch's
    here) and the division torch's. On a GPU a scalar divisor would be turned into a multiplication
    by its reciprocal (up to 1 ulp off), so the divisor is a device tensor: a true division there too.
    """
    if isinstance(rgb, torch.Tensor) and rgb.device.type != "cpu":
        if rgb.dtype != torch.uint8:
            raise TypeError(f"expected uint8 frames, got {rgb.dtype}")
        return rgb.to(torch.float32).div_(torch.full((), 255.0, device=rgb.device))
    a = rgb.numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
    if a.dtype != np.uint8:
        raise TypeError(f"expected uint8 frames, got {a.dtype}")
    return torch.from_numpy(a.astype(np.float32)).div_(255.0)


#: float bytes one chunk of frames may take on a GPU (frames are independent: chunking changes no value)
GPU_CHUNK_BYTES = 512 << 20


def preprocess_frames(u8: torch.Tensor, resizer: FrameResizer, chunk: int | None = None) -> torch.Tensor:
    """The protocol's preprocessing of uint8 RGB frames ``(N, H, W, 3)`` on their device:
    float32 ``(3, N, h, w)`` in [-1, 1] (the layout of a clip's ``frames``).

    The one definition, used by the CPU pipeline (one frame at a time, through ``FrameResizer``)
    and by ``preprocess_on=device`` (clips of source-size uint8 frames, resized where the model
    runs): to [0, 1] as float32, ``resizer.resize_crop``, then ``x * 2 - 1``. ``chunk`` frames are
    made float at once (default: 1 on the CPU, so at most one full-size float frame is held and
    values are today's exactly; on a GPU as many as fit in ``GPU_CHUNK_BYTES``).
    """
    if u8.dtype != torch.uint8 or u8.ndim != 4 or u8.shape[-1] != 3:
        raise TypeError(f"preprocess_frames takes uint8 (N, H, W, 3) frames, got {u8.dtype} {tuple(u8.shape)}")
    n, height, width = u8.shape[:3]
    h, w = resizer.output_size(height, width)
    if chunk is None:
        chunk = 1 if u8.device.type == "cpu" else max(1, GPU_CHUNK_BYTES // max(1, height * width * 3 * 4))
    out = torch.empty((3, n, h, w), dtype=torch.float32, device=u8.device)
    for s in range(0, n, chunk):
        y = resizer.resize_crop(to_unit(u8[s : s + chunk]).permute(0, 3, 1, 2))
        if y.shape[-2:] != (h, w):
            raise VideoError("frame", f"frames of {width}x{height} gave {y.shape[-1]}x{y.shape[-2]}, expected {w}x{h}")
        out[:, s : s + chunk] = y.permute(1, 0, 2, 3)
    return to_signed(out)


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] in place, as a clip's frames are (no re-quantisation to uint8)."""
    return x.mul_(2.0).sub_(1.0)
