"""The banded-vs-whole comparison shared by the image networks' first-layer row bands (LPIPS-VGG, DISTS)."""
from __future__ import annotations

from typing import Any

import pytest
import torch


def banded_and_whole(net: Any, flag: str, n: int, h: int, w: int, band: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``net(x, y)`` on a random pair with ``row_bands.BAND_PIXELS = band`` (16 and 100: 2-row and few-row bands),
    then with ``net.<flag>`` off (the whole-map path)."""
    from vidtok_bench.metrics import row_bands

    assert getattr(net, flag)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, h, w, generator=g) * 2 - 1
    y = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(row_bands, "BAND_PIXELS", band)
        banded = net(x, y)
        mp.setattr(net, flag, False)
        whole = net(x, y)
    return banded, whole
