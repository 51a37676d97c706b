"""Inference paths: FSQ ids round-trip and index formula, posterior sampling, bad input, precision."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import vidtok_bench
from vidtok_bench.errors import InputShapeError
from vidtok_bench.models.vidtok_fsq import FSQ
from _vidtok_fixtures import FIXTURES, cases, config_name, overrides


def _tok(case_name: str, **kw):
    case = cases()[case_name]
    return vidtok_bench.create_tokenizer(config_name(case), checkpoint=str(FIXTURES / f"{case_name}.ckpt"),
                                         device="cpu", **{**overrides(case), **kw})


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(2, 9), min_size=1, max_size=5), st.integers(0, 2**31 - 1))
def test_fsq_index_is_mixed_radix_channel0_least_significant(levels, seed) -> None:
    fsq = FSQ(levels)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(2, len(levels), 3, 2, 2, generator=g) * 3
    codes, idx = fsq.quantize(z)
    # independent reference: digit_i = round(bounded z_i) + L_i//2, index = sum digit_i * prod(L_<i)
    ref = torch.zeros(2, 3, 2, 2, dtype=torch.int64)
    mult = 1
    for i, lv in enumerate(levels):
        half_l = (lv - 1) * 1.001 / 2
        offset = 0.5 if lv % 2 == 0 else 0.0
        bounded = torch.tanh(z[:, i] + torch.atanh(torch.tensor(offset / half_l))) * half_l - offset
        digit = bounded.round().long() + lv // 2
        assert digit.min() >= 0 and digit.max() < lv
        assert torch.allclose(codes[:, i], (digit - lv // 2).float() / (lv // 2))
        ref += digit * mult
        mult *= lv
    assert torch.equal(idx, ref)
    assert torch.equal(fsq.indices_to_codes(idx), codes)


def test_fsq_builds_no_codebook_matrix() -> None:
    fsq = FSQ([8] * 6)
    assert sum(b.numel() for b in fsq.buffers()) == 12  # levels + basis only, not 262144 x 6


def test_fsq_token_ids_round_trip() -> None:
    tok = _tok("v10_fsq_causal_488_4096")
    x = torch.rand(1, 3, 9, 16, 24) * 2 - 1
    ids = tok.encode(x)
    assert ids.dtype == torch.int64 and ids.shape == (1, 3, 2, 3)
    assert 0 <= int(ids.min()) and int(ids.max()) < tok.codebook_size
    assert torch.equal(tok.decode(ids), tok.reconstruct(x))
    assert torch.equal(tok.decode(ids), tok.decode(tok.latent_codes(x)))
    with pytest.raises(InputShapeError, match="token ids"):
        tok.decode(torch.full((1, 3, 2, 3), tok.codebook_size))


def test_kl_mode_default_and_seeded_sampling() -> None:
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    mode_tok = _tok("v10_kl_causal_488")
    mode = mode_tok.encode(x)
    assert torch.equal(mode, mode_tok.encode(x))
    a, b = _tok("v10_kl_causal_488", sample_posterior=True, seed=7), _tok("v10_kl_causal_488", sample_posterior=True, seed=7)
    sa, sb = a.encode(x), b.encode(x)
    assert torch.equal(sa, sb) and not torch.equal(sa, mode)
    info = a.info()
    assert info["sample_posterior"] is True and info["seed"] == 7 and info["latent"] == "posterior_sample"
    assert mode_tok.info()["latent"] == "posterior_mode"
    with pytest.raises(InputShapeError, match="continuous"):
        mode_tok.decode(torch.zeros(1, 2, 2, 2, dtype=torch.int64))


def test_bad_input_says_the_rule() -> None:
    tok = _tok("v10_kl_causal_488")
    with pytest.raises(InputShapeError, match=r"16 frames given.*4k\+1.*pads clips to 17"):
        tok.encode(torch.zeros(1, 3, 16, 16, 16))
    with pytest.raises(InputShapeError, match="multiple of 8"):
        tok.encode(torch.zeros(1, 3, 17, 20, 16))
    nc = _tok("v10_kl_noncausal_488")
    with pytest.raises(InputShapeError, match="4k frames"):
        nc.encode(torch.zeros(1, 3, 17, 16, 16))


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_runs_and_stays_close(precision: str) -> None:
    x = torch.rand(1, 3, 5, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    ref = _tok("v11_kl_causal_488").reconstruct(x)
    out = _tok("v11_kl_causal_488", precision=precision).reconstruct(x)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    # reduced precision keeps ~3 (bf16) or ~4 (fp16) significant digits per layer: judge the
    # relative RMS error of the whole reconstruction, not its single worst pixel
    rel = ((out - ref).pow(2).mean() / ref.pow(2).mean()).sqrt()
    assert rel < 0.05
