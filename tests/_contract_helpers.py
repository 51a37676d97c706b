"""Inputs for tests/test_contract.py: tiny configs of the plugins that need weights, a smooth test
video, and small files for the file-backed datasets. Plugin *lists* are not kept here: the
contract tests discover plugins from the registries; this only says how to make the expensive
ones cheap."""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import numpy as np
import torch

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SHARED_CLIP = SHARED / "videos" / "vidtok_example_256x256.mp4"

#: official VidTok fixture checkpoints (ch=8) that run on CPU in about a second: KL and FSQ,
#: causal and non-causal, 4x8x8 / 4x16x16 / 8x8x8, v1.0 and v1.1
VIDTOK_FIXTURES = ("v10_kl_causal_488", "v10_fsq_causal_488_4096", "v10_kl_noncausal_488",
                   "v10_fsq_noncausal_41616", "v11_fsq_causal_888")

#: diffusers VAE class -> (tiny random from_config kwargs, input (B, T, H, W) or None for the default);
#: copied from tests/test_diffusers_vae.py (no hub access)
DIFFUSERS_TINY: dict[str, tuple[dict, tuple[int, int, int, int] | None]] = {
    "AutoencoderKLCogVideoX": (dict(block_out_channels=(8, 16, 16, 16), latent_channels=4, layers_per_block=1, norm_num_groups=4), None),
    "AutoencoderKLHunyuanVideo": (dict(block_out_channels=(8, 16, 16, 16), latent_channels=4, layers_per_block=1, norm_num_groups=4), None),
    "AutoencoderKLLTXVideo": (dict(block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
                                   decoder_layers_per_block=(1, 1, 1, 1, 1), latent_channels=8), None),
    "AutoencoderKLWan": (dict(base_dim=8, z_dim=4, dim_mult=[1, 2, 2, 2], num_res_blocks=1, latents_mean=[0.0] * 4, latents_std=[1.0] * 4), None),
    "AutoencoderKLMochi": (dict(encoder_block_out_channels=(32, 32, 32, 32), decoder_block_out_channels=(32, 32, 32, 32), latent_channels=4,
                                layers_per_block=(1, 1, 1, 1, 1), add_attention_block=(False, False, False, False, True)), None),
    "AutoencoderKLCosmos": (dict(encoder_block_out_channels=(8, 8, 8, 8), decode_block_out_channels=(8, 8, 8, 8), latent_channels=4, num_layers=1,
                                 latents_mean=None, latents_std=None), None),
    # Allegro works only on whole tiles (24 frames x sample_size^2): one 24x64x64 tile, one clip
    "AutoencoderKLAllegro": (dict(block_out_channels=(4, 4, 4, 4), latent_channels=4, layers_per_block=1, norm_num_groups=2, sample_size=64),
                             (1, 24, 64, 64)),
}


def default_shape(tok) -> tuple[int, int, int, int]:
    """(B, T, H, W) a tokenizer accepts: 2 clips of about 9 frames, at least 32 pixels, two
    latent pixels and its minimum frame size per side."""
    t = tok.frame_rule.fit_up(9)
    s = int(tok.spatial_multiple)
    side = max(32, 2 * s, *tok.min_frame_size)
    side = int(math.ceil(side / s) * s)
    return 2, t, side, side


def smooth_video(b: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """(B,3,T,H,W) in [-1,1]: moving colour gratings plus a little noise (natural-ish content);
    a fresh copy of a cached tensor (small torch ops are slow on a busy 2-core machine)."""
    return _smooth_video(int(b), int(t), int(h), int(w), int(seed)).clone()


@functools.lru_cache(maxsize=64)
def _smooth_video(b: int, t: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy = torch.linspace(0, 1, h).view(1, 1, 1, h, 1)
    xx = torch.linspace(0, 1, w).view(1, 1, 1, 1, w)
    tt = torch.arange(t, dtype=torch.float32).view(1, 1, t, 1, 1) / 16
    phase = torch.rand(b, 3, 1, 1, 1, generator=g) * 2 * math.pi
    x = 0.7 * torch.sin(2 * math.pi * (1.5 * xx + yy + tt) + phase)
    x = x + 0.1 * (torch.rand(b, 3, t, h, w, generator=g) * 2 - 1)
    return x.clamp(-1, 1).float().contiguous()


def write_yuv(path: Path, width: int, height: int, frames: int, seed: int) -> Path:
    """Raw 8-bit YUV 4:2:0 with horizontal and vertical structure (so a crop offset is visible)."""
    rng = np.random.default_rng(seed)
    xs = np.arange(width)[None, :]
    ys = np.arange(height)[:, None]
    out = bytearray()
    for i in range(frames):
        y = (16 + (xs * 200 // max(width - 1, 1) + 7 * ys + 3 * i) % 220).astype(np.uint8)
        y = np.clip(y.astype(np.int16) + rng.integers(-3, 4, y.shape), 16, 235).astype(np.uint8)
        u = np.full((height // 2, width // 2), 128 + (seed * 17) % 60 - 30, np.uint8)
        v = (64 + np.arange(width // 2)[None, :] * 4 + np.zeros((height // 2, 1), np.int64)).clip(16, 240).astype(np.uint8)
        out += y.tobytes() + u.tobytes() + v.tobytes()
    path.write_bytes(bytes(out))
    return path


def write_png_sequence(folder: Path, width: int, height: int, frames: int, seed: int) -> Path:
    """Numbered PNG frames 00000.png ... with structure in both directions."""
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    xs = np.arange(width)[None, :, None]
    ys = np.arange(height)[:, None, None]
    for i in range(frames):
        img = (xs * 255 // max(width - 1, 1) + 5 * ys + 4 * i + np.array([0, 80, 160])) % 256
        img = np.clip(img + rng.integers(-3, 4, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img, "RGB").save(folder / f"{i:05d}.png")
    return folder


def make_dataset_files(root: Path) -> dict[str, Path]:
    """Small inputs for the file-backed datasets: 'folder' (an mp4 link and two raw YUV files),
    'mcl_jcv' (two raw sources named as the official distribution names them), 'video_list'
    (a CSV of path,start,end into the folder) and 'image_sequence' (two folders of PNG frames)."""
    folder = root / "folder"
    folder.mkdir(parents=True)
    if SHARED_CLIP.is_file():
        os.symlink(SHARED_CLIP, folder / "example.mp4")
    write_yuv(folder / "a_32x18_30.yuv", 32, 18, 20, seed=1)
    write_yuv(folder / "sub_b_32x18_30.yuv", 32, 18, 20, seed=2)
    mcl = root / "mcl"
    mcl.mkdir()
    write_yuv(mcl / "videoSRC01_32x18_30.yuv", 32, 18, 20, seed=3)
    write_yuv(mcl / "videoSRC02_32x18_30.yuv", 32, 18, 20, seed=4)
    listed = root / "list.csv"
    rows = ["path,start,end", "a_32x18_30.yuv,2,18"] + (["example.mp4,5,"] if SHARED_CLIP.is_file() else ["sub_b_32x18_30.yuv,,"])
    listed.write_text("\n".join(rows) + "\n")
    frames = root / "frames"
    write_png_sequence(frames / "seq_a", 64, 48, 20, seed=5)
    write_png_sequence(frames / "seq_b", 64, 48, 12, seed=6)
    return {"folder": folder, "mcl_jcv": mcl, "video_list": listed, "image_sequence": frames}
