"""FLOP counts (formula for a plain Conv3d; meta-device count == real count == per-layer formula for
VidTok fixtures), the GPU peak table, MFU arithmetic and the meta-device activation estimate."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import vidtok_bench
from vidtok_bench.flops import (PEAK_TFLOPS, achieved, count_flops, device_peak_flops, estimate_activation_bytes,
                                gpu_model)
from vidtok_bench.tokenizer import Tokenizer
from _vidtok_fixtures import FIXTURES, cases, config_name, overrides


class ConvTokenizer(Tokenizer):
    """encode: Conv3d 3->8, k=3, stride (1,2,2), pad 1; decode: 1x1x1 Conv3d 8->3 (shapes only matter)."""

    def __init__(self) -> None:
        super().__init__(device="cpu", name="conv")
        self.enc = nn.Conv3d(3, 8, 3, stride=(1, 2, 2), padding=1)
        self.dec = nn.Conv3d(8, 3, 1)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        return self.enc(video)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.dec(latent)


def test_conv3d_flops_match_the_formula() -> None:
    b, t, h, w = 2, 5, 16, 24
    out_voxels = b * t * (h // 2) * (w // 2)  # stride 2 in H, W with pad 1 and k=3
    got = count_flops(ConvTokenizer(), (b, 3, t, h, w))
    assert got == {"encode": 2 * out_voxels * 8 * 3 * 27, "decode": 2 * out_voxels * 3 * 8 * 1}


def _tok(case_name: str, **kw):
    case = cases()[case_name]
    return vidtok_bench.create_tokenizer(config_name(case), checkpoint=str(FIXTURES / f"{case_name}.ckpt"),
                                         device="cpu", **{**overrides(case), **kw})


def _formula_flops(tok, x: torch.Tensor) -> dict[str, int]:
    """Independent count from forward hooks: 2*MACs of every conv, 4*b*t*(hw)^2*c per attention block."""
    from vidtok_bench.models.vidtok_blocks import VidTokAttnBlock

    total = {"n": 0}

    def conv_hook(mod, inp, out):
        total["n"] += 2 * out.numel() * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)

    def attn_hook(mod, inp, out):
        b, c, t, h, w = inp[0].shape
        total["n"] += 4 * b * t * (h * w) ** 2 * c

    model = tok.load()
    handles = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    handles += [m.register_forward_hook(attn_hook) for m in model.modules() if isinstance(m, VidTokAttnBlock)]
    try:
        latent = tok.encode(x)
        enc, total["n"] = total["n"], 0
        tok.decode(latent)
        return {"encode": enc, "decode": total["n"]}
    finally:
        for hd in handles:
            hd.remove()


@pytest.mark.parametrize("case_name, kw, shape", [
    ("v10_kl_causal_488", {}, (1, 3, 9, 16, 24)),
    ("v10_fsq_causal_488_4096", {}, (1, 3, 5, 16, 16)),
    ("v10_kl_noncausal_488", {}, (1, 3, 4, 16, 16)),
    ("v11_kl_causal_488", {"tiling": True, "t_chunk": 8}, (1, 3, 9, 16, 16)),  # chunks, caches, decoder overlap
])
def test_meta_count_equals_the_layer_formula_on_the_real_model(case_name, kw, shape) -> None:
    tok = _tok(case_name, channels_last=False, **kw)  # the plain forward: every conv is a module the hooks see
    meta = count_flops(tok, shape)
    assert meta["encode"] > 0 and meta["decode"] > 0
    assert _formula_flops(tok, torch.zeros(shape)) == meta
    assert count_flops(_tok(case_name, channels_last=True, **kw), shape) == meta  # the CPU fast path does the same work


def test_meta_count_equals_a_counted_real_run() -> None:
    tok = _tok("v11_kl_causal_488", tiling=True, t_chunk=8)
    meta = count_flops(tok, (1, 3, 9, 16, 16))
    tok.meta_copy = None  # force the real, weighted run (CPU attention kernel included)
    assert count_flops(tok, (1, 3, 9, 16, 16)) == meta


def test_flops_scale_with_the_clip() -> None:
    tok = _tok("v10_kl_causal_488")
    small, big = count_flops(tok, (1, 3, 5, 32, 32)), count_flops(tok, (1, 3, 5, 64, 64))
    for k in ("encode", "decode"):  # convs scale 4x with pixels; attention (x16) is a small share
        assert 4 <= big[k] / small[k] < 4.5


@pytest.mark.parametrize("name, key", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200"), ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA L40S", "L40S"), ("NVIDIA GeForce RTX 4090", "RTX 4090"),
    ("NVIDIA L40", None), ("Tesla T4", None), ("NVIDIA GeForce RTX 4090 D", None),
])
def test_gpu_names_map_to_the_peak_table(name, key) -> None:
    assert gpu_model(name) == key


def test_device_peak_flops() -> None:
    assert device_peak_flops("NVIDIA H100 80GB HBM3", torch.bfloat16) == pytest.approx(989.4e12)
    assert device_peak_flops("NVIDIA H100 80GB HBM3", "fp32") == pytest.approx(66.9e12)
    assert device_peak_flops("NVIDIA A100-SXM4-40GB", "tf32") == pytest.approx(156e12)
    assert device_peak_flops("NVIDIA L40S", torch.float16) == pytest.approx(362.05e12)
    assert device_peak_flops("cpu", torch.float32) is None
    assert device_peak_flops(torch.device("cpu"), "bf16") is None
    assert device_peak_flops("Tesla T4", "fp16") is None
    for table in PEAK_TFLOPS.values():  # tensor cores: bf16 = fp16 = 2 x tf32 >= fp32 (dense)
        assert table["bf16"] == table["fp16"] and table["tf32"] == pytest.approx(table["bf16"] / 2, rel=0.02)
        assert table["fp32"] <= table["tf32"]


def test_achieved_tflops_and_mfu() -> None:
    got = achieved(20.7e12, 1.15, "NVIDIA H100 80GB HBM3", "fp32")
    assert got["tflops"] == pytest.approx(18.0) and got["mfu"] == pytest.approx(18.0 / 66.9)
    assert achieved(1e9, 0.5, "cpu", "fp32") == {"tflops": pytest.approx(0.002), "mfu": None}
    assert achieved(None, 1.0, "cpu", "fp32") == {"tflops": None, "mfu": None}
    assert achieved(1e9, 0.0, "cpu", "fp32") == {"tflops": None, "mfu": None}


def test_activation_estimate_runs_on_meta_and_scales() -> None:
    tok = _tok("v10_kl_causal_488")
    assert estimate_activation_bytes(vidtok_bench.create_tokenizer("identity"), (1, 3, 5, 32, 32)) is None
    small = estimate_activation_bytes(tok, (1, 3, 5, 32, 32))
    big = estimate_activation_bytes(tok, (1, 3, 5, 64, 64))
    assert small > 4 * 3 * 5 * 32 * 32  # more than the clip itself
    assert 3.5 < big / small < 4.5
    assert tok._model is None  # the estimate never loaded the checkpoint


def test_throughput_block_turns_flops_into_rates_and_mfu() -> None:
    """1e12 encode and 3e12 decode FLOPs in 1 s + 1 s against a 4 TFLOP/s peak: 1, 3 and 2 TFLOP/s, MFU 0.5."""
    from vidtok_bench.stages.assemble import make_throughput

    t = make_throughput(1.0, 1.0, 2, 34, flops=(1e12, 3e12), peak_flops=4e12)
    assert (t.encode_tflops_per_s, t.decode_tflops_per_s, t.tflops_per_s) == pytest.approx((1.0, 3.0, 2.0))
    assert t.peak_tflops_per_s == pytest.approx(4.0) and t.mfu == pytest.approx(0.5)
    unknown = make_throughput(1.0, 1.0, 2, 34, flops=(None, None), peak_flops=4e12)
    assert unknown.tflops_per_s is None and unknown.mfu is None
