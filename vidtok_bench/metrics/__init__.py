"""Video reconstruction metrics, usable on your own tensors.

Functional: :func:`psnr`, :func:`ssim`, :func:`frechet_distance`.
Networks: :class:`LPIPS` (``net="alex"|"vgg"``; (N,3,H,W) in [-1,1] -> (N,) scores),
:class:`DISTS` (``DISTS(device=...)(x, y)``, the same shapes) and :class:`I3D` ((B,3,T,224,224) in [-1,1] -> (B,400) logits, the FVD feature).
"""
from __future__ import annotations

import importlib
from typing import Any

# psnr/ssim are imported eagerly: their modules share the functions' names, and a lazy
# lookup would be shadowed by the submodule once it is imported.
from .psnr import psnr  # noqa: E402
from .ssim import ssim  # noqa: E402

_LAZY = {
    "LPIPS": "vidtok_bench.metrics.lpips",
    "DISTS": "vidtok_bench.metrics.dists",
    "I3D": "vidtok_bench.metrics.i3d",
    "frechet_distance": "vidtok_bench.metrics.fvd",
}

__all__ = ["psnr", "ssim", *_LAZY]


def __getattr__(name: str) -> Any:  # lazy, so `import vidtok_bench` stays cheap
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
