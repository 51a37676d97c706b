"""The LPIPS v0.1 network (scaling layer, AlexNet or VGG16 trunk cut into five slices, linear layers) as plain
torch modules.

The layout is the ``lpips`` package's (``net.slice{k}.{i}`` keys with torchvision's feature indices, so the two
state dicts are interchangeable for the trunk); building it here keeps ``lpips`` and torchvision out of a run's
imports (with them: +100 MB resident and about a second per process, torch._dynamo and sympy included). The
tests check this network against the package's own forward and an independent float64 implementation.
"""
from __future__ import annotations

import torch
import torch.nn as nn

#: v0.1 scaling layer constants: (x - shift) / scale
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

#: per net: trunk layers in torchvision's ``features`` order as (kind, args), and the feature index that ends
#: each of the five slices (exclusive). "C": Conv2d(in, out, kernel, stride, padding) + ReLU; "P": MaxPool2d(kernel, stride)
_TRUNKS: dict[str, tuple[list[tuple[str, tuple[int, ...]]], tuple[int, ...]]] = {
    "alex": ([("C", (3, 64, 11, 4, 2)), ("P", (3, 2)), ("C", (64, 192, 5, 1, 2)), ("P", (3, 2)),
              ("C", (192, 384, 3, 1, 1)), ("C", (384, 256, 3, 1, 1)), ("C", (256, 256, 3, 1, 1))],
             (2, 5, 8, 10, 12)),
    "vgg": ([("C", (3, 64, 3, 1, 1)), ("C", (64, 64, 3, 1, 1)), ("P", (2, 2)),
             ("C", (64, 128, 3, 1, 1)), ("C", (128, 128, 3, 1, 1)), ("P", (2, 2)),
             ("C", (128, 256, 3, 1, 1)), ("C", (256, 256, 3, 1, 1)), ("C", (256, 256, 3, 1, 1)), ("P", (2, 2)),
             ("C", (256, 512, 3, 1, 1)), ("C", (512, 512, 3, 1, 1)), ("C", (512, 512, 3, 1, 1)), ("P", (2, 2)),
             ("C", (512, 512, 3, 1, 1)), ("C", (512, 512, 3, 1, 1)), ("C", (512, 512, 3, 1, 1))],
            (4, 9, 16, 23, 30)),
}


class ScalingLayer(nn.Module):
    """``(x - shift) / scale`` per RGB channel (inputs in [-1, 1])."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale


class Trunk(nn.Module):
    """The backbone as ``slice1`` ... ``slice5`` (nn.Sequential), each ending at one of LPIPS' feature layers."""

    def __init__(self, net: str) -> None:
        super().__init__()
        layers, ends = _TRUNKS[net]
        features: list[nn.Module] = []
        for kind, args in layers:
            if kind == "C":
                cin, cout, k, s, p = args
                features += [nn.Conv2d(cin, cout, k, stride=s, padding=p), nn.ReLU(inplace=True)]
            else:
                features.append(nn.MaxPool2d(args[0], stride=args[1]))
        self.channels = [next(m.out_channels for m in reversed(features[:e]) if isinstance(m, nn.Conv2d)) for e in ends]
        self.N_slices = len(ends)
        start = 0
        for k, end in enumerate(ends, 1):
            part = nn.Sequential()
            for i in range(start, end):
                part.add_module(str(i), features[i])  # torchvision's indices: the package's key names
            setattr(self, f"slice{k}", part)
            start = end


class LPIPSNet(nn.Module):
    """``scaling_layer``, ``net`` (the trunk) and ``lins`` (one bias-free 1x1 conv to 1 channel per slice)."""

    def __init__(self, net: str) -> None:
        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.net = Trunk(net)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in self.net.channels)


def build(net: str, device: str | torch.device = "meta") -> LPIPSNet:
    """The network for ``net`` ('alex' or 'vgg'), by default without allocating weights (load them with
    ``load_state_dict(..., assign=True)``)."""
    with torch.device(device):
        return LPIPSNet(net).eval().requires_grad_(False)
