"""Parity with the official VidTok implementation: every fixture case, fp32 CPU, max abs error <= 1e-4."""
from __future__ import annotations

import json

import pytest
import torch

import vidtok_bench
from _vidtok_fixtures import FIXTURES, cases, config_name, overrides

TOL = 1e-4
CASE_NAMES = sorted(json.loads((FIXTURES / "cases.json").read_text())) if (FIXTURES / "cases.json").is_file() else []


def _max_err(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a.float() - b.float()).abs().max().item()


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@pytest.mark.parametrize("case_name", CASE_NAMES)
def test_case_matches_official(case_name: str) -> None:
    case = cases()[case_name]
    io = torch.load(FIXTURES / f"{case_name}.io.pt", weights_only=True)
    ckpt = FIXTURES / f"{case_name}.ckpt"
    tok = vidtok_bench.create_tokenizer(
        config_name(case), checkpoint=str(ckpt), device="cpu", sample_posterior=False, tiling=False, **overrides(case)
    )
    x = io["input"]
    latent = tok.encode(x)
    recon = tok.decode(latent)
    assert _max_err(recon, io["recon"]) <= TOL
    if case["regularizer"] == "kl":
        mean, logvar = tok.load().split_moments(tok.encode_moments(x))
        assert _max_err(mean, io["latent_mean"]) <= TOL
        assert _max_err(logvar, io["latent_logvar"]) <= TOL
        assert _max_err(latent, io["latent_mean"]) <= TOL  # the default latent is the posterior mode
    else:
        assert latent.dtype == torch.int64
        assert torch.equal(latent, io["indices"].long())
        assert _max_err(tok.latent_codes(x), io["latent_q"]) <= TOL
        assert _max_err(tok.decode(io["indices"]), io["recon_from_indices"]) <= TOL
    if "long_input" in io:
        long_tok = vidtok_bench.create_tokenizer(
            config_name(case), checkpoint=str(ckpt), device="cpu", tiling=True, **overrides(case)
        )
        assert long_tok.preferred_clip_len is None
        z = long_tok.latent_codes(io["long_input"])
        assert _max_err(z, io["long_latent"]) <= TOL
        assert _max_err(long_tok.decode(z), io["long_recon"]) <= TOL
        assert _max_err(long_tok.decode(long_tok.encode(io["long_input"])), io["long_recon"]) <= TOL
