"""Shared helpers for the VidTok tests: the official fixtures in ../shared/fixtures/vidtok."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "vidtok"
ARCH_KEYS = ("z_channels", "ch", "ch_mult", "num_res_blocks", "spatial_ds", "spatial_us", "tempo_ds", "tempo_us")


def cases() -> dict:
    if not (FIXTURES / "cases.json").is_file():
        pytest.skip(f"VidTok fixtures not found at {FIXTURES}")
    return json.loads((FIXTURES / "cases.json").read_text())


def config_name(case: dict) -> str:
    return Path(case["official_config"]).stem


def overrides(case: dict) -> dict:
    """The case's architecture as create_tokenizer overrides (official parameter names)."""
    ep = case["encoder_params"]
    out = {k: ep[k] for k in ARCH_KEYS if k in ep}
    out["time_downsample_factor"] = ep["time_downsample_factor"]
    if case["fsq_levels"]:
        out["fsq_levels"] = case["fsq_levels"]
    return out
