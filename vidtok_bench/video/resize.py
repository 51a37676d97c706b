"""Short-side resize + centre crop of single frames, the way the VidTok evaluator does it.

The VidTok evaluator converts uint8 frames to float in [0, 1], applies torchvision's
``transforms.v2.Resize(size, antialias=True)`` (bilinear) and then ``CenterCrop(size)``.
Ground truth resized with another filter gives different metric values, so the filter is
part of the protocol. For float tensors torchvision v2 calls
``torch.nn.functional.interpolate(mode="bilinear", antialias=True, align_corners=False)``;
we call the same function on one frame at a time (tests/test_video_resize.py shows the
values are identical to torchvision v2 on real frames), so a whole video's full-resolution
frames are never held as float.
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

    def __call__(self, rgb: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (H, W, 3) RGB -> float32 (3, h, w) in [0, 1]; only this one frame is made float."""
        a = rgb.numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb)
        # uint8 -> float32 is exact, numpy's cast is several times faster than torch's here; the
        # division is torch's, as in the evaluator's `frames.float() / 255.`. The (1, 3, H, W)
        # view is channels-last in memory, which interpolate takes directly (values tested equal).
        x = torch.from_numpy(a.astype(np.float32)).div_(255.0).permute(2, 0, 1).unsqueeze(0)
        height, width = x.shape[-2:]
        if self.size is not None and self.filter != "none":
            h, w = resized_size(height, width, self.size)
            if (h, w) != (height, width):  # torchvision returns the image unchanged then
                x = F.interpolate(x, size=(h, w), mode=_MODES[self.filter], align_corners=False, antialias=True)
                if self.filter == "bicubic_antialias":
                    x = x.clamp_(0.0, 1.0)  # bicubic overshoots; frames must stay in range
            height, width = h, w
        if self.size is not None and self.crop == "center":
            if height < self.size or width < self.size:
                raise VideoError("frame", f"frames are {width}x{height}, smaller than the crop {self.size}x{self.size}")
            top, left = center_crop_anchor(height, width, self.size, self.size)
            x = x[..., top : top + self.size, left : left + self.size]
        return x[0].contiguous()
