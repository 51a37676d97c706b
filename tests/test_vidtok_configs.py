"""The 23 named VidTok configs: exact released state-dict layout (meta device) and tokenizer attributes."""
from __future__ import annotations

import json
import math

import pytest

import vidtok_bench
from vidtok_bench.errors import ConfigError
from vidtok_bench.frames import FrameRule
from vidtok_bench.config import yaml_names
from _vidtok_fixtures import FIXTURES

SHAPES_FILE = FIXTURES / "full_size_state_dict_shapes.json"
NAMES = [n for n in yaml_names("tokenizer") if n.startswith("vidtok_")]


def test_all_23_released_names_have_a_config() -> None:
    assert len(NAMES) == 23
    if SHAPES_FILE.is_file():
        assert set(NAMES) == set(json.loads(SHAPES_FILE.read_text()))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_layout_equals_release(name: str) -> None:
    if not SHAPES_FILE.is_file():
        pytest.skip("shape fixture missing")
    expected = json.loads(SHAPES_FILE.read_text())[name]
    tok = vidtok_bench.create_tokenizer(name, device="cpu")  # builds nothing, downloads nothing
    got = tok.expected_shapes()  # meta device: no weights allocated
    assert got == {k: list(v) for k, v in expected.items()}


@pytest.mark.parametrize("name", NAMES)
def test_attributes_follow_the_name(name: str) -> None:
    tok = vidtok_bench.create_tokenizer(name, device="cpu")
    parts = name.split("_")
    shape = parts[3]
    t, s = {"488": (4, 8), "41616": (4, 16), "288": (2, 8), "444": (4, 4), "888": (8, 8)}[shape]
    assert tok.compression == (t, s, s)
    assert tok.spatial_multiple == s
    v11 = name.endswith("_v1_1")
    if parts[2] == "causal":
        assert tok.causal and tok.frame_rule == FrameRule(t, 1, 1)
        assert tok.preferred_clip_len == (None if v11 else 17)
        assert tok.frame_rule.accepts(17) and not tok.frame_rule.accepts(16)
    else:
        assert not tok.causal and tok.frame_rule == FrameRule(4, 0, 4)
        assert tok.preferred_clip_len == 16
    if parts[1] == "fsq":
        assert tok.codebook_size == int(parts[4]) == 8 ** tok.latent_channels
        assert tok.discrete
    else:
        assert tok.codebook_size is None and tok.latent_channels == int(parts[4][:-3])
    assert tok.hub_path == (f"checkpoints/vidtok_v1_1/{name}.ckpt" if v11 else f"checkpoints/{name}.ckpt")
    assert math.isclose(tok.nominal_bits_per_pixel() * t * s * s,
                        math.log2(tok.codebook_size) if tok.discrete else 16 * tok.latent_channels)


def test_overrides_use_official_names() -> None:
    tok = vidtok_bench.create_tokenizer("vidtok_kl_causal_488_4chn", ch=8, ch_mult=[1, 2], z_channels=3,
                                        num_res_blocks=1, spatial_ds=[0], spatial_us=[1], tempo_ds=[0], tempo_us=[1],
                                        time_downsample_factor=2, device="cpu")
    assert tok.compression == (2, 2, 2) and tok.latent_channels == 3
    shapes = tok.expected_shapes()
    assert shapes["encoder.conv_in.conv.weight"] == [8, 3, 3, 3, 3]
    assert shapes["encoder.conv_out.conv.weight"][0] == 6  # KL: mean + logvar


def test_inconsistent_or_unknown_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="time_downsample_factor"):
        vidtok_bench.create_tokenizer("vidtok_kl_causal_488_4chn", tempo_ds=[1])
    with pytest.raises(ConfigError, match="tiling"):
        vidtok_bench.create_tokenizer("vidtok_kl_causal_488_4chn", tiling=True)
    with pytest.raises(ConfigError, match="fsq_levels"):
        vidtok_bench.create_tokenizer("vidtok_fsq_causal_488_4096", fsq_levels=[8, 8])
    with pytest.raises(ConfigError, match="bogus"):
        vidtok_bench.create_tokenizer("vidtok_kl_causal_488_4chn", bogus=1)


@pytest.mark.parametrize("name, t_chunk", [("vidtok_kl_causal_488_4chn_v1_1", 0), ("vidtok_kl_causal_488_4chn_v1_1", -4),
                                            ("vidtok_kl_causal_488_4chn_v1_1", 6), ("vidtok_fsq_causal_888_32768_v1_1", 12)])
def test_t_chunk_must_be_a_positive_multiple_of_the_time_factor(name: str, t_chunk: int) -> None:
    """t_chunk=0 looped forever in the tiled encoder; a chunk the time factor does not divide padded every chunk
    and decoded a clip of another length (17 frames came back as 21) without a word."""
    with pytest.raises(ConfigError, match=f"t_chunk={t_chunk} must be a positive multiple of"):
        vidtok_bench.create_tokenizer(name, tiling=True, t_chunk=t_chunk)
