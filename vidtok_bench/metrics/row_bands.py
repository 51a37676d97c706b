"""Rows of a stack of 3x3 convolutions computed band by band, for the full-resolution first layers of the image
networks on CPUs (LPIPS-VGG's slice 1, DISTS' first stage): their 64-channel maps (~45 MB per image at 640x272)
then never exist whole, only a band of them.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F

#: pixels per row band of a first layer on CPUs (a band's 64-channel map: 4 MB per image)
BAND_PIXELS = 1 << 14


def band_rows(width: int) -> int:
    """Rows per band for maps ``width`` wide: :data:`BAND_PIXELS` worth, even (a band then pools by 2 on its own),
    at least 2."""
    return max(2, BAND_PIXELS // width // 2 * 2)


def conv_stack_rows(layers: Iterable[torch.nn.Module], x: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
    """Rows ``[r0, r1)`` of ``layers(x)`` for a stack of 3x3 padding-1 convs and ReLUs: the input rows they reach
    (one more on each side per conv), each conv run without row padding, and the rows outside the image set to
    zero after each conv (the next conv's padding). Rows asked for outside the image come back as zeros."""
    layers = list(layers)
    h = x.shape[2]
    halo = sum(isinstance(mod, torch.nn.Conv2d) for mod in layers)
    lo, hi = r0 - halo, r1 + halo
    t = x[:, :, max(lo, 0): min(hi, h)]
    if lo < 0 or hi > h:
        t = F.pad(t, (0, 0, max(-lo, 0), max(hi - h, 0)))
    for mod in layers:
        if isinstance(mod, torch.nn.Conv2d):
            t = F.conv2d(t, mod.weight, mod.bias, padding=(0, 1))
            lo += 1
            if lo < 0:
                t[:, :, : -lo] = 0
            if lo + t.shape[2] > h:
                t[:, :, h - lo:] = 0
        else:
            t = mod(t)
    return t
