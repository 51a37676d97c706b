"""Temporal stability of reconstructions: flicker (PSNR of temporal differences) and tLPIPS.

Both take ``real`` and ``recon`` videos (B,3,T,H,W) in [-1,1] (T >= 2) and return one value per
consecutive frame pair, (B,T-1) float64 on the inputs' device; a video's value is the mean over
its pairs (:func:`per_video`).

* **flicker** (``psnr_diff``, dB, higher is better): frames go to [0,1] as in
  :mod:`~vidtok_bench.metrics.psnr` (``u = (x+1)/2``, inputs as given: clamping is the
  protocol's, applied before every metric by :mod:`vidtok_bench.scoring`); for t = 1..T-1,
  ``D_t = (u_recon[t] - u_recon[t-1]) - (u_real[t] - u_real[t-1])`` and
  ``psnr_diff_t = -10*log10(mean_{c,h,w}(D_t^2) + 1e-8)``. An error that is constant in time
  (e.g. a fixed offset) scores the maximum, 80 dB; an error that changes from frame to frame
  (flicker) scores low, whatever the per-frame PSNR.
* **tLPIPS** (lower is better): ``|LPIPS(recon[t], recon[t-1]) - LPIPS(real[t], real[t-1])|``
  with the LPIPS callable the caller passes (network and version are the caller's choice; the
  frames are passed as they are, unclamped, as :class:`~vidtok_bench.metrics.lpips.LPIPS` takes them).
"""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import InputShapeError
from .psnr import EPS, _to_unit

PairMetric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (N,3,H,W) x2 -> (N,)


def _check(real: torch.Tensor, recon: torch.Tensor, name: str) -> None:
    if real.shape != recon.shape or real.ndim != 5 or real.shape[1] != 3 or real.shape[2] < 2:
        raise InputShapeError(f"{name} takes two (B,3,T,H,W) videos of equal shape with T >= 2, "
                              f"got {tuple(real.shape)} and {tuple(recon.shape)}")


def flicker_psnr(real: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of the temporal differences' error, per frame pair: (B,T-1) float64 (see module doc)."""
    _check(real, recon, "flicker_psnr")
    d = (_to_unit(recon) - _to_unit(real)).diff(dim=2)  # Δrecon_t - Δreal_t = err_t - err_{t-1}
    return -10 * torch.log10(d.pow(2).mean(dim=(1, 3, 4)) + EPS)


def tlpips(real: torch.Tensor, recon: torch.Tensor, lpips: PairMetric, frame_batch: int = 32) -> torch.Tensor:
    """``|lpips(recon_t, recon_{t-1}) - lpips(real_t, real_{t-1})|`` per frame pair: (B,T-1) float64.

    ``lpips`` maps two (N,3,H,W) batches to (N,) distances, e.g. ``LPIPS("vgg", device)``;
    it is called on at most ``frame_batch`` pairs at a time.
    """
    _check(real, recon, "tlpips")
    b, c, t, h, w = real.shape

    def pair_distances(v: torch.Tensor) -> torch.Tensor:
        cur = v[:, :, 1:].transpose(1, 2).reshape(b * (t - 1), c, h, w)
        prev = v[:, :, :-1].transpose(1, 2).reshape(b * (t - 1), c, h, w)
        out = [lpips(cur[i:i + frame_batch], prev[i:i + frame_batch]).reshape(-1).to(v.device, torch.float64)
               for i in range(0, cur.shape[0], max(1, frame_batch))]
        return torch.cat(out).reshape(b, t - 1)

    return (pair_distances(recon) - pair_distances(real)).abs()


def per_video(pair_values: torch.Tensor) -> torch.Tensor:
    """A video's value: the mean over its frame pairs, (B,T-1) -> (B,)."""
    return pair_values.mean(dim=1)


__all__ = ["flicker_psnr", "per_video", "tlpips"]
