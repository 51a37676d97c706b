"""Frame metrics written from their definitions, shared by the tests that check the harness against them
(test_psnr_ssim.py: metric by metric; test_protocol_presets.py: whole protocol runs)."""
from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate


def ref_psnr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame PSNR of (N,H,W,3) frames with pixels in [0,255]: -10*log10(mse + 1e-8) in [0,1] units."""
    a, b = a / 255.0, b / 255.0
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(1)
    return -10 * np.log10(mse + 1e-8)


def ref_ssim_wang(a: np.ndarray, b: np.ndarray) -> float:
    """Wang et al.'s SSIM of one RGB image pair (H,W,3) with pixels in [0,255] (uint8, or float for unquantised
    frames), written from the paper:
    downsample by f, 11x11 Gaussian sigma 1.5, valid region, K=(0.01,0.03), channel mean."""
    f = max(1, round(min(a.shape[:2]) / 256))
    vals = []
    for ch in range(3):
        x, y = a[..., ch] / 255.0, b[..., ch] / 255.0
        if f > 1:
            box = np.ones((f, f)) / f**2
            h0 = (f - 1) // 2
            x = correlate(x, box, mode="constant")[h0::f, h0::f][: x.shape[0] // f, : x.shape[1] // f]
            y = correlate(y, box, mode="constant")[h0::f, h0::f][: y.shape[0] // f, : y.shape[1] // f]
        g = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
        w = np.outer(g, g) / np.outer(g, g).sum()
        valid = lambda z: correlate(z, w, mode="constant")[5:-5, 5:-5]  # noqa: E731
        mx, my = valid(x), valid(y)
        sxx, syy, sxy = valid(x * x) - mx**2, valid(y * y) - my**2, valid(x * y) - mx * my
        c1, c2 = 0.01**2, 0.03**2
        vals.append((((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))).mean())
    return float(np.mean(vals))
