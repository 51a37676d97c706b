"""The project's VidTok blocks (models/vidtok_blocks.py) against diffusers' implementation as a reference.

The same constructor arguments (``VidTokAutoencoder.__init__`` builds both), the same state-dict keys and
shapes, the same random weights (every parameter perturbed, so no path is hidden by an identity or a zero),
the same outputs: encoder and decoder, whole clips and v1.1 temporal tiling with causal caches and overlap.
diffusers is a test-only reference here; the package itself must not import it (last test).
"""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from vidtok_bench.models import vidtok as V
from vidtok_bench.models import vidtok_blocks as B
from vidtok_bench.models.vidtok import VidTokArch, build_vidtok

D = pytest.importorskip("diffusers.models.autoencoders.autoencoder_vidtok")

TOL = 1e-5

#: (id, arch, frames): small models of every kind; one with two res blocks and other level lists
ARCHS = [
    ("v10_noncausal_kl", VidTokArch(version="1.0", causal=False, regularizer="kl", ch=8, ch_mult=(1, 2, 2)), 16),
    ("v10_noncausal_fsq", VidTokArch(version="1.0", causal=False, regularizer="fsq", z_channels=4, ch=8,
                                     ch_mult=(1, 2, 2), fsq_levels=(8, 8, 5, 5)), 16),
    ("v11_causal_kl", VidTokArch(version="1.1", causal=True, regularizer="kl", ch=8, ch_mult=(1, 2, 2)), 17),
    ("v11_causal_fsq_tdf8", VidTokArch(version="1.1", causal=True, regularizer="fsq", z_channels=4, ch=8,
                                       ch_mult=(1, 2, 2, 2), num_res_blocks=2, tempo_ds=(0, 1, 2),
                                       tempo_us=(1, 2, 3)), 17),
    ("v10_causal_kl", VidTokArch(version="1.0", causal=True, regularizer="kl", ch=8, ch_mult=(1, 2, 2)), 9),
    ("v10_causal_fsq_288", VidTokArch(version="1.0", causal=True, regularizer="fsq", z_channels=4, ch=8,
                                      ch_mult=(1, 2, 2), num_res_blocks=2, tempo_ds=(1,), tempo_us=(2,)), 9),
]
IDS = [a[0] for a in ARCHS]

#: v1.0 causal reference: diffusers' temporal layers given the same v1.0 forwards (their correctness is
#: the fixtures' business, tests/test_vidtok_parity.py); everything else stays diffusers' own
REF_V10_SWAPS = {D.VidTokCausalConv3d: V._ZeroPastConv3d, D.VidTokCausalConv1d: V._ZeroPastConv1d,
                 D.VidTokDownsample3D: V._V10TimeDownsample, D.VidTokUpsample3D: V._V10TimeUpsample}

#: attributes of diffusers' modules that ours leave out: training only / a switch nothing sets
ONLY_IN_DIFFUSERS = {"gradient_checkpointing", "enable_cached"}


def _perturbed(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights near the initialisation: LayerNorm scales away from 1, biases away from 0, blend
    factors sigmoid(m) spread over (0.27, 0.73) so both branches of every mix count."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("mix_factor"):
                p.copy_(torch.rand(p.shape, generator=g) * 2 - 1)
            else:
                p.add_(torch.randn(p.shape, generator=g), alpha=0.05)
    return model


def _pair(arch: VidTokArch, monkeypatch: pytest.MonkeyPatch, seed: int = 0):
    """(ours, reference): the same VidTokAutoencoder, the reference's encoder/decoder built from diffusers'
    classes by the same constructor call, with the same (perturbed) weights."""
    ours = _perturbed(build_vidtok(arch), seed)
    with monkeypatch.context() as m:
        m.setattr(V, "VidTokEncoder3D", D.VidTokEncoder3D)
        m.setattr(V, "VidTokDecoder3D", D.VidTokDecoder3D)
        m.setattr(V, "_V10_SWAPS", REF_V10_SWAPS)
        ref = build_vidtok(arch)
    assert type(ref.encoder) is D.VidTokEncoder3D and type(ours.encoder) is B.VidTokEncoder3D
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ours, ref


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape and a.dtype == b.dtype
    return (a - b).abs().max().item()


@pytest.mark.parametrize("name, arch, frames", ARCHS, ids=IDS)
def test_same_keys_shapes_and_attributes(name, arch, frames, monkeypatch) -> None:
    ours, ref = _pair(arch, monkeypatch)
    so, sr = ours.state_dict(), ref.state_dict()
    assert list(so) == list(sr)  # same keys, same order
    assert {k: v.shape for k, v in so.items()} == {k: v.shape for k, v in sr.items()}
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in ref.named_buffers()]
    mods_o, mods_r = list(ours.named_modules()), list(ref.named_modules())
    assert [n for n, _ in mods_o] == [n for n, _ in mods_r]
    for (n, mo), (_, mr) in zip(mods_o, mods_r):
        assert type(mo).__name__ == type(mr).__name__, n  # the v1.0 swap classes on both sides
        public = lambda mod: {k for k in vars(mod) if not k.startswith("_")}  # noqa: E731
        assert public(mr) - ONLY_IN_DIFFUSERS <= public(mo), (n, public(mr) - public(mo))
        for attr in ("time_pad", "spatial_padding", "cache_offset", "num_temp_upsample", "is_causal",
                     "interpolation_mode", "spatial_ds", "tempo_ds", "spatial_us", "tempo_us", "in_channels",
                     "out_channels", "use_conv_shortcut", "num_resolutions", "num_res_blocks", "kernel_size"):
            if hasattr(mr, attr):
                assert getattr(mo, attr) == getattr(mr, attr), (n, attr)


def test_v10_swaps_map_our_classes() -> None:
    assert V._V10_SWAPS == {B.VidTokCausalConv3d: V._ZeroPastConv3d, B.VidTokCausalConv1d: V._ZeroPastConv1d,
                            B.VidTokDownsample3D: V._V10TimeDownsample, B.VidTokUpsample3D: V._V10TimeUpsample}
    for new, old in ((V._ZeroPastConv3d, B.VidTokCausalConv3d), (V._V10TimeUpsample, B.VidTokUpsample3D)):
        assert issubclass(new, old)
    model = build_vidtok(VidTokArch(version="1.0", causal=True, ch=8, ch_mult=(1, 2, 2)), "meta")
    types = [type(m) for m in model.modules()]
    assert not any(t in V._V10_SWAPS for t in types)  # every temporal layer swapped
    assert all(t in types for t in V._V10_SWAPS.values())
    v11 = build_vidtok(VidTokArch(version="1.1", causal=True, ch=8, ch_mult=(1, 2, 2)), "meta")
    assert not any(type(m) in V._V10_SWAPS.values() for m in v11.modules())


def test_blend_factors_follow_the_device() -> None:
    """The mix factors are made with torch.Tensor([...]), as the official code; build_vidtok moves them."""
    model = build_vidtok(VidTokArch(version="1.1", causal=True, ch=8, ch_mult=(1, 2, 2)), "meta")
    assert {p.device.type for p in model.parameters()} == {"meta"}
    model = build_vidtok(VidTokArch(version="1.1", causal=True, ch=8, ch_mult=(1, 2, 2)))
    mix = [p for n, p in model.named_parameters() if n.endswith("mix_factor")]
    assert mix and all(p.item() == 2.0 for p in mix)


@pytest.mark.parametrize("name, arch, frames", ARCHS, ids=IDS)
def test_encode_decode_match_diffusers(name, arch, frames, monkeypatch) -> None:
    ours, ref = _pair(arch, monkeypatch)
    x = torch.rand(1, 3, frames, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        raw_o, raw_r = ours.encode_raw(x), ref.encode_raw(x)
        assert _max_diff(raw_o, raw_r) <= TOL
        z = ours.split_moments(raw_o)[0] if arch.regularizer == "kl" else ours.fsq.quantize(raw_o)[0]
        out_o, out_r = ours.decode_latent(z), ref.decode_latent(z)
        assert _max_diff(out_o, out_r) <= TOL
        # batch of two: per-sample work (the non-causal per-sample interpolation, attention) stays per sample
        x2 = torch.cat([x, x.flip(2)])
        assert _max_diff(ours.encode_raw(x2), ref.encode_raw(x2)) <= TOL
    assert raw_o.abs().max() > 0.1 and out_o.abs().max() > 0.1  # not a degenerate all-zero comparison


@pytest.mark.parametrize("name, arch, frames", [a for a in ARCHS if a[1].version == "1.1"],
                         ids=[a[0] for a in ARCHS if a[1].version == "1.1"])
@pytest.mark.parametrize("t_chunk", [8, 16])
def test_v11_tiling_with_caches_matches_diffusers(name, arch, frames, t_chunk, monkeypatch) -> None:
    """Chunked encoding (caches carried between chunks) and chunked decoding with one latent frame of overlap
    (cache offsets): several chunks each way, for every temporal layer."""
    ours, ref = _pair(arch, monkeypatch, seed=3)
    x = torch.rand(1, 3, 2 * 16 + 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        raw_o, raw_r = ours.encode_raw(x, tiling=True, t_chunk=t_chunk), ref.encode_raw(x, tiling=True, t_chunk=t_chunk)
        assert _max_diff(raw_o, raw_r) <= TOL
        z = ours.split_moments(raw_o)[0] if arch.regularizer == "kl" else ours.fsq.quantize(raw_o)[0]
        assert z.shape[2] >= 3
        calls = []
        hook = ours.decoder.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[2]))
        out_o = ours.decode_latent(z, tiling=True, t_chunk=t_chunk)
        hook.remove()
        out_r = ref.decode_latent(z, tiling=True, t_chunk=t_chunk)
        assert len(calls) >= 3 and calls[1] > t_chunk // arch.time_factor  # chunks after the first, overlapping
        assert out_o.shape[2] == x.shape[2]
        assert _max_diff(out_o, out_r) <= TOL


def test_causal_conv_cache_is_the_tail_the_next_chunk_reads() -> None:
    """Our caches keep only the last time_pad frames; a chunk after a chunk sees the same past as diffusers'
    full-chunk cache, with and without a cache offset."""
    torch.manual_seed(0)
    ref = D.VidTokCausalConv3d(4, 5, 3)
    ours = B.VidTokCausalConv3d(4, 5, 3)
    ours.load_state_dict(ref.state_dict())
    chunks = torch.randn(1, 4, 9, 6, 6).split([1, 3, 5], dim=2)
    for offset in (0, 1, 2):
        for m in (ours, ref):
            m.cache_offset, m.causal_cache = offset, None
        for i, c in enumerate(chunks):
            ours.is_first_chunk = ref.is_first_chunk = i == 0
            assert _max_diff(ours(c), ref(c)) == 0.0
            assert torch.equal(ours.causal_cache, ref.causal_cache[:, :, -ours.time_pad:])


def test_importing_the_model_does_not_import_diffusers() -> None:
    code = ("import sys, vidtok_bench.models.vidtok, vidtok_bench.models.vidtok_fast\n"
            "heavy = sorted({m for m in sys.modules if m.split('.')[0] in ('diffusers', 'torchvision', 'scipy')"
            " or m == 'torch._dynamo'})\n"
            "assert not heavy, heavy[:5]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
