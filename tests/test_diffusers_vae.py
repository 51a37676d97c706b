"""The diffusers adapter on tiny randomly initialised VAEs of every supported class (no download)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from vidtok_bench.errors import CheckpointError, ConfigError, InputShapeError
from vidtok_bench.config import resolve_group
from vidtok_bench.registry import create_tokenizer
from vidtok_bench.tokenizers.diffusers_vae import DiffusersVAETokenizer

torch.set_num_threads(2)

# class -> (tiny config, expected (t, s, c) factors, a (T, H, W) the class accepts, expected latent T)
TINY = {
    "AutoencoderKLCogVideoX": (dict(block_out_channels=(8, 16, 16, 16), latent_channels=4, layers_per_block=1, norm_num_groups=4), (4, 8, 4), (9, 32, 32), 3),
    "AutoencoderKLHunyuanVideo": (dict(block_out_channels=(8, 16, 16, 16), latent_channels=4, layers_per_block=1, norm_num_groups=4), (4, 8, 4), (9, 32, 32), 3),
    "AutoencoderKLLTXVideo": (dict(block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
                                   decoder_layers_per_block=(1, 1, 1, 1, 1), latent_channels=8), (8, 32, 8), (9, 64, 64), 2),
    "AutoencoderKLWan": (dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, latents_mean=[0.0] * 4, latents_std=[1.0] * 4), (4, 8, 4), (9, 32, 32), 3),
    "AutoencoderKLMochi": (dict(encoder_block_out_channels=(32, 32, 32, 32), decoder_block_out_channels=(32, 32, 32, 32), latent_channels=4,
                                layers_per_block=(1, 1, 1, 1, 1), add_attention_block=(False, False, False, False, True)), (6, 8, 4), (13, 16, 16), 3),
    "AutoencoderKLCosmos": (dict(encoder_block_out_channels=(8, 8, 8, 8), decode_block_out_channels=(8, 8, 8, 8), latent_channels=4, num_layers=1,
                                 latents_mean=None, latents_std=None), (8, 8, 4), (17, 32, 32), 3),
    "AutoencoderKLAllegro": (dict(block_out_channels=(4, 4, 4, 4), latent_channels=4, layers_per_block=1, norm_num_groups=2, sample_size=128), (4, 8, 4), (24, 128, 128), 6),
}
EXTRA = {"AutoencoderKLAllegro": dict(frame_rule="16k+8", min_frames=24)}


def _tok(cls: str, **kw) -> DiffusersVAETokenizer:
    cfg = TINY[cls][0]
    return DiffusersVAETokenizer(vae_class=cls, config=cfg, name=f"tiny_{cls}", **{**EXTRA.get(cls, {}), **kw})


@pytest.mark.parametrize("cls", sorted(TINY))
def test_tiny_roundtrip_shapes_and_rate(cls):
    cfg, (t, s, c), (T, H, W), lt = TINY[cls]
    tok = _tok(cls)
    assert tok.compression == (t, s, s) and tok.latent_channels == c and tok.spatial_multiple == s
    assert tok.frame_rule.accepts(T)
    torch.manual_seed(0)
    x = torch.rand(1, 3, T, H, W) * 2 - 1
    z = tok.encode(x)
    assert tuple(z.shape) == (1, c, lt, H // s, W // s)
    y = tok.decode(z)
    assert tuple(y.shape) == (1, 3, T, H, W) and y.dtype == torch.float32
    assert float(y.abs().max()) <= 1.0 and torch.isfinite(y).all()
    # continuous rate: latent elements x 16 bits / pixels, written independently here
    assert tok.latent_bits(z) / (T * H * W) == pytest.approx(c * lt * (H // s) * (W // s) * 16 / (T * H * W))
    assert tok.nominal_bits_per_pixel() == pytest.approx(c * 16 / (t * s * s))


def test_frame_rule_is_enforced():
    tok = _tok("AutoencoderKLCogVideoX")
    with pytest.raises(InputShapeError, match="4k\\+1"):
        tok.encode(torch.zeros(1, 3, 8, 32, 32))
    with pytest.raises(InputShapeError, match="multiple of 8"):
        tok.encode(torch.zeros(1, 3, 9, 36, 32))


def test_allegro_rejects_partial_tiles():
    tok = _tok("AutoencoderKLAllegro")
    with pytest.raises(InputShapeError, match="whole tiles"):
        tok.check_input(torch.zeros(1, 3, 24, 64, 64))


def test_sampling_is_seeded_and_differs_from_mode():
    x = torch.rand(1, 3, 5, 16, 16) * 2 - 1
    a = _tok("AutoencoderKLWan", sample=True, seed=1)
    b = _tok("AutoencoderKLWan", sample=True, seed=1)
    b.model.load_state_dict(a.model.state_dict())
    mode = _tok("AutoencoderKLWan")
    mode.model.load_state_dict(a.model.state_dict())
    za, zb, zm = a.encode(x), b.encode(x), mode.encode(x)
    assert torch.equal(za, zb) and not torch.equal(za, zm)
    assert torch.equal(mode.encode(x), zm)  # the mode is deterministic
    assert a.info()["latent"] == "posterior sample" and mode.info()["latent"] == "posterior mode"


def test_samples_follow_the_video_stream_not_the_batching():
    """sample=true draws from one stream per video (``start_video``), as VidTok does: two clips batched together get
    what they get one per call, and a clip's noise is not its neighbour's. Each call used to restart the seed, so every
    clip got the same noise and a batch of two gave the second clip other noise than a call of its own."""
    x = torch.rand(2, 3, 5, 16, 16) * 2 - 1
    tok = _tok("AutoencoderKLWan", sample=True, seed=3)
    mode = tok.model.encode(x).latent_dist.mode()
    tok.start_video("v0")
    batched = tok.encode(x)
    tok.start_video("v0")
    single = torch.cat([tok.encode(x[:1]), tok.encode(x[1:])])
    torch.testing.assert_close(batched, single, rtol=0, atol=1e-5)  # the convolutions batch, the noise is the same
    noise = batched - mode
    assert not torch.allclose(noise[0], noise[1])  # the second clip's noise is its own
    tok.start_video("v1")
    assert not torch.allclose(tok.encode(x[:1]), batched[:1])  # another video, another stream


def test_named_configs_are_complete_and_do_not_download():
    names = ["cogvideox", "hunyuan_video", "ltx_video", "wan", "mochi", "cosmos_cv8x8x8", "allegro"]
    for n in names:
        cfg = resolve_group("tokenizer", n)
        assert cfg["plugin"] == "diffusers_vae" and "/" in cfg["pretrained"], n
        tok = create_tokenizer(n)  # lazy: no hub access at construction
        assert tok._model is None
        info = tok.info()
        assert info["compression"] == [cfg["temporal_factor"], cfg["spatial_factor"], cfg["spatial_factor"]]
        assert math.isclose(info["nominal_bits_per_pixel"], cfg["latent_channels"] * 16 / (cfg["temporal_factor"] * cfg["spatial_factor"] ** 2))
        json.dumps(info)
    assert create_tokenizer("mochi").frame_rule.fit_up(17) == 19
    assert create_tokenizer("cosmos_cv8x8x8").frame_rule.accepts(17)


def test_offline_empty_cache_gives_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tok = create_tokenizer("cogvideox", cache_dir=str(tmp_path / "hf"))
    with pytest.raises(CheckpointError) as err:
        tok.encode(torch.zeros(1, 3, 9, 32, 32))
    msg = str(err.value)
    assert "\n" not in msg and "THUDM/CogVideoX-2b" in msg and "tokenizer.pretrained=" in msg
    assert "not in the Hugging Face cache" in msg


def _save_tiny(cls: str, folder) -> dict:
    import diffusers

    model = getattr(diffusers, cls).from_config(TINY[cls][0])
    model.save_pretrained(str(folder))
    return model.state_dict()


def test_loads_local_folder_and_hub_cache(tmp_path, monkeypatch):
    cls = "AutoencoderKLHunyuanVideo"
    sd = _save_tiny(cls, tmp_path / "local" / "vae")
    common = dict(vae_class=cls, temporal_factor=4, spatial_factor=8, latent_channels=4)
    tok = DiffusersVAETokenizer(pretrained=str(tmp_path / "local"), **common)
    x = torch.rand(1, 3, 9, 32, 32) * 2 - 1
    assert tuple(tok.encode(x).shape) == (1, 4, 3, 4, 4)
    assert torch.equal(tok.model.state_dict()["quant_conv.weight"], sd["quant_conv.weight"])
    info = tok.weights_info()
    assert info["source"] == "local"
    import hashlib

    weights = tmp_path / "local" / "vae" / "diffusion_pytorch_model.safetensors"
    assert info["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    # a Hugging Face cache laid out as the hub client writes it, read offline
    snap = tmp_path / "hf" / "models--org--tiny" / "snapshots" / ("a" * 40)
    _save_tiny(cls, snap / "vae")
    (tmp_path / "hf" / "models--org--tiny" / "refs").mkdir()
    (tmp_path / "hf" / "models--org--tiny" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = DiffusersVAETokenizer(pretrained="org/tiny", cache_dir=str(tmp_path / "hf"), **common)
    assert tuple(hub.encode(x).shape) == (1, 4, 3, 4, 4)
    assert hub.weights_info()["source"] == "hub" and hub.weights_info()["commit"] == "a" * 40
    # factors in the config that disagree with the weights are caught
    bad = DiffusersVAETokenizer(pretrained=str(tmp_path / "local"), **{**common, "latent_channels": 16})
    with pytest.raises(CheckpointError, match="channels=4"):
        bad.encode(x)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="no class"):
        DiffusersVAETokenizer(vae_class="AutoencoderKLNope", config={})
    with pytest.raises(ConfigError, match="torch_dtype"):
        DiffusersVAETokenizer(vae_class="AutoencoderKLWan", config={}, torch_dtype="float8")
    with pytest.raises(ConfigError, match="pretrained"):
        DiffusersVAETokenizer(vae_class="AutoencoderKLWan")


@pytest.mark.parametrize("cls", sorted(TINY))
def test_meta_copy_counts_the_flops_of_a_real_run(cls):
    """The runner's FLOP count (a meta-device copy) equals the count of a real, weighted run."""
    from vidtok_bench.flops import count_flops, meta_flops

    _, _, (T, H, W), _ = TINY[cls]
    tok = _tok(cls)
    meta = meta_flops(tok, (1, 3, T, H, W))
    assert meta is not None and meta["encode"] > 0 and meta["decode"] > 0
    tok.meta_copy = None  # force the real run
    assert count_flops(tok, (1, 3, T, H, W)) == meta
