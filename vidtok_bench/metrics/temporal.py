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

from typing import Any, Callable, Sequence

import torch

from ..errors import InputShapeError
from ..registry import register_metric
from ..results import MetricInfo
from .base import ClipMetric, frames_per_call, to_unit
from .psnr import EPS, slab_frames

PairMetric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (N,3,H,W) x2 -> (N,)


def _check(real: torch.Tensor, recon: torch.Tensor, name: str) -> None:
    if real.shape != recon.shape or real.ndim != 5 or real.shape[1] != 3 or real.shape[2] < 2:
        raise InputShapeError(f"{name} takes two (B,3,T,H,W) videos of equal shape with T >= 2, "
                              f"got {tuple(real.shape)} and {tuple(recon.shape)}")


def flicker_psnr(real: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """PSNR (dB) of the temporal differences' error, per frame pair: (B,T-1) float64 (see module doc).

    On CPUs the pairs are taken a slab of frames at a time (:func:`~.psnr.slab_frames`, as PSNR's MSE is): the
    float64 error of a whole clip and its differences were ~3x the clip's float32 bytes at once (1 GB beside one
    17-frame 720p clip)."""
    _check(real, recon, "flicker_psnr")
    t, step = real.shape[2], slab_frames(real)
    out = []
    for s in range(0, t - 1, step):  # the pairs ending in frames s+1 .. e-1: a slab repeats the last one's last frame
        e = min(t, s + step + 1)
        d = (to_unit(recon[:, :, s:e]) - to_unit(real[:, :, s:e])).diff(dim=2)  # Δrecon_t - Δreal_t = err_t - err_{t-1}
        out.append(d.square_().mean(dim=(1, 3, 4)))
    return -10 * torch.log10((out[0] if len(out) == 1 else torch.cat(out, dim=1)) + EPS)


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


FLICKER_DEFINITION = ("per consecutive frame pair t-1,t of a clip, frames u=(x+1)/2 in [0,1]: "
                      "D_t = (u_recon[t]-u_recon[t-1]) - (u_real[t]-u_real[t-1]); "
                      "flicker_t = -10*log10(mean_{c,h,w}(D_t^2) + 1e-8) dB")
TLPIPS_DEFINITION = ("per consecutive frame pair t-1,t of a clip: "
                     "|LPIPS(recon[t], recon[t-1]) - LPIPS(real[t], real[t-1])|")
PAIR_REDUCTION = ("per clip: the mean over its consecutive frame pairs (T-1 for T scored frames; no pair spans "
                  "two clips; a 1-frame clip has none and is left out); then the mean over clips")


class FramePairMetric(ClipMetric):
    """A metric of consecutive frame pairs, kind ``clip``: :meth:`pairs` gives one value per pair,
    (B,T-1); a clip's statistic is their mean; videos and the run average clips."""

    def pairs(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """(B,3,T,H,W) x2 -> (B,T-1) float64: one value per consecutive frame pair."""
        raise NotImplementedError

    def per_clip(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return per_video(self.pairs(real, fake)).double().cpu()

    def clip_stats(self, real: torch.Tensor, fake: torch.Tensor) -> list[list[float]]:
        if real.shape[2] < 2:  # a 1-frame clip (e.g. a short last clip without its tail) has no pair
            return [[] for _ in range(real.shape[0])]
        return super().clip_stats(real, fake)


@register_metric("flicker")
class FlickerMetric(FramePairMetric):
    """Temporal flicker: PSNR (dB) of the error of frame differences, per consecutive frame pair."""

    info = MetricInfo(label="Flicker PSNR", unit="dB", higher_is_better=True, precision=2, tolerance="0.1",
                      kind="clip", reduction=PAIR_REDUCTION)

    def pairs(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return flicker_psnr(real, fake)

    def spec(self) -> dict[str, Any]:
        return {"name": "flicker", "definition": FLICKER_DEFINITION, "range": "RGB [0,1]",
                "note": "an error constant in time scores 80 dB (the 1e-8 floor); inputs as the protocol prepared them",
                "reduction": PAIR_REDUCTION}


@register_metric("tlpips")
class TLPIPSMetric(FramePairMetric):
    """tLPIPS: |LPIPS between consecutive reconstructed frames - the same for the real frames|. Options: ``net``."""

    info = MetricInfo(label="tLPIPS", higher_is_better=False, precision=4, tolerance="0.002", kind="clip",
                      reduction=PAIR_REDUCTION)

    def __init__(self, device: str | torch.device = "cpu", net: str = "alex", frame_batch: int = 32):
        from .lpips import _net_name

        super().__init__(device=device)
        self.net = _net_name(net)
        self.frame_batch = max(1, int(frame_batch))
        self._model: Any = None
        self._shared: Any = None

    def bind(self, tokenizer: Any, metrics: dict[str, Any]) -> None:
        """Share the backbone pass of an ``lpips`` metric of the same run with the same net, device and batch: its
        frames' features give both metrics' distances (one network in memory, each frame through it once)."""
        from .lpips import LPIPSMetric

        self._shared = next((m for m in metrics.values() if isinstance(m, LPIPSMetric) and m.net == self.net
                             and m.device == self.device and m.frame_batch == self.frame_batch), None)
        if self._shared is not None:
            self._shared.with_consecutive = True

    @property
    def model(self) -> Any:
        if self._shared is not None:
            return self._shared.model
        if self._model is None:  # built (weights fetched) on first use
            from .lpips import LPIPS

            self._model = LPIPS(self.net, device=self.device)
        return self._model

    def frames_per_call(self, hw: Sequence[int]) -> int:
        """Frames per backbone call: ``frame_batch``, on CPUs at most the image-network pixel cap
        (:func:`.base.frames_per_call`; VGG at 640x272 holds ~140 MB per frame in its first slice)."""
        return frames_per_call(self.device, self.frame_batch, hw)

    def pairs(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """:func:`tlpips` with each frame's LPIPS features computed once (the same numbers): by the shared
        ``lpips`` metric's pass when there is one, else by this metric's own."""
        _check(real, fake, "tlpips")
        if self._shared is not None:
            d = self._shared.distances(real, fake)
        else:
            d = self.model.video_distances(real, fake, self.frames_per_call(real.shape[-2:]), pair=False, consecutive=True)
        return (d.fake.double() - d.real.double()).abs().cpu()  # float64: the difference of float32 values is exact

    def spec(self) -> dict[str, Any]:
        from .lpips import _NETS, IMPLEMENTATION
        from ..weights import manager

        return {"name": "tlpips", "definition": TLPIPS_DEFINITION, "lpips": "LPIPS v0.1 (lin layers)",
                "network": self.net, "weights_sha256": manager.artifact(_NETS[self.net][0]).sha256,
                "implementation": IMPLEMENTATION, "input_range": "[-1,1]", "reduction": PAIR_REDUCTION}


__all__ = ["FlickerMetric", "FramePairMetric", "TLPIPSMetric", "flicker_psnr", "per_video", "tlpips"]
