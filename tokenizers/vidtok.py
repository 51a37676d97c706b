"""Every released VidTok checkpoint (v1.0 and v1.1, KL and FSQ) as a tokenizer plugin.

One plugin, ``vidtok``; the named configs ``conf/tokenizer/vidtok_*.yaml`` hold each
released model's architecture with the official parameter names, so any of them can be
overridden (``tokenizer.ch=8``, ``create_tokenizer(NAME, ch=8, checkpoint=PATH)``).

Weights are loaded on first use, from ``checkpoint`` (a local ``.ckpt`` or
``.safetensors``) or, when it is null, from the Hugging Face repo into its cache.
KL models return the posterior mode (deterministic) unless ``sample_posterior`` is set,
then a sample from a generator seeded with ``seed`` (in a run: with ``seed`` and the video, see
:meth:`VidTokTokenizer.start_video`). FSQ models return int64 token ids
(B,T',H',W') and decode either ids or float codes.
"""
from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from vidtok_bench.autotune import StaticShapeAutotune
from vidtok_bench.checkpoints import check_state_dict, load_state_dict
from vidtok_bench.errors import ConfigError, InputShapeError
from vidtok_bench.frames import FrameRule
from vidtok_bench.hashing import sha256_file
from vidtok_bench.hub import VIDTOK_REPO, fetch_checkpoint, vidtok_repo_path
from vidtok_bench.models.vidtok_arch import VidTokArch
from vidtok_bench.registry import register_tokenizer
from vidtok_bench.tokenizer import Tokenizer



def _tuple(value: Any, key: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (int, str)):
        value = [value]
    try:
        return tuple(int(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"tokenizer.{key}={value!r} must be a list of integers") from None


@register_tokenizer("vidtok")
class VidTokTokenizer(Tokenizer):
    def __init__(
        self,
        version: str = "1.0",
        regularizer: str = "kl",
        causal: bool = True,
        z_channels: int = 4,
        ch: int = 128,
        ch_mult: Sequence[int] = (1, 2, 4, 4),
        num_res_blocks: int = 2,
        spatial_ds: Sequence[int] | None = None,
        spatial_us: Sequence[int] | None = None,
        tempo_ds: Sequence[int] | None = None,
        tempo_us: Sequence[int] | None = None,
        time_downsample_factor: int | None = None,
        fsq_levels: Sequence[int] | None = None,
        checkpoint: str | None = None,
        hub_repo: str = VIDTOK_REPO,
        hub_path: str | None = None,
        sample_posterior: bool = False,
        seed: int = 42,
        tiling: bool = False,
        t_chunk: int = 16,
        channels_last: bool | None = None,
        compile: bool = False,
        cudnn_benchmark: bool | None = None,
        **kw: Any,
    ):
        super().__init__(**kw)
        try:
            self.arch = VidTokArch(
                version=str(version), causal=bool(causal), regularizer=str(regularizer), z_channels=int(z_channels),
                ch=int(ch), ch_mult=_tuple(ch_mult, "ch_mult") or (1, 2, 4, 4), num_res_blocks=int(num_res_blocks),
                spatial_ds=_tuple(spatial_ds, "spatial_ds"), spatial_us=_tuple(spatial_us, "spatial_us"),
                tempo_ds=_tuple(tempo_ds, "tempo_ds"), tempo_us=_tuple(tempo_us, "tempo_us"),
                fsq_levels=_tuple(fsq_levels, "fsq_levels"),
            )
        except ValueError as exc:
            raise ConfigError(f"tokenizer '{self.name}': {exc}") from None
        a = self.arch
        if time_downsample_factor is not None and int(time_downsample_factor) != a.time_factor:
            raise ConfigError(
                f"tokenizer '{self.name}': time_downsample_factor={time_downsample_factor} but tempo_ds "
                f"{a.tempo_ds_list} gives {a.time_factor}; override time_downsample_factor together with tempo_ds"
            )
        self.tiling = bool(tiling)
        if self.tiling and not (a.causal and a.version == "1.1"):
            raise ConfigError(f"tokenizer '{self.name}': tiling=true is the v1.1 long-video mode; v1.0 models evaluate independent clips")
        self.t_chunk = int(t_chunk)
        if self.tiling and (self.t_chunk < 1 or self.t_chunk % a.time_factor):
            # encoder and decoder chunks must cut at the same frames (official: 16 frames, 16 / time factor latents)
            raise ConfigError(f"tokenizer '{self.name}': t_chunk={t_chunk} must be a positive multiple of the time "
                              f"factor {a.time_factor} (frames per tiled chunk; official 16)")
        # None: the channels-last forward on CPUs (oneDNN) and CUDA GPUs (on an H100 1.32x faster in bf16, 38% less
        # memory in fp32; parity tested on both), diffusers' own layout elsewhere
        self.channels_last = None if channels_last is None else bool(channels_last)
        self.compile = bool(compile)
        # None: autotune cuDNN kernels when a call repeats the previous call's shape (fixed-size clips), else leave the flag
        self._autotune = StaticShapeAutotune(None if cudnn_benchmark is None else bool(cudnn_benchmark))
        self.sample_posterior = bool(sample_posterior)
        self.seed = int(seed)
        self.checkpoint = str(checkpoint) if checkpoint else None
        self.hub_repo = hub_repo
        self.hub_path = hub_path or vidtok_repo_path(self.name, a.version)

        tdf, sf = a.time_factor, a.space_factor
        self.causal = a.causal
        self.compression = (tdf, sf, sf)
        self.frame_rule = FrameRule(tdf, 1, 1) if a.causal else FrameRule(tdf, 0, tdf)
        # the VidTok evaluator's clips: 17 frames causal (4k+1, 2k+1 and 8k+1 all accept 17), 16 non-causal
        self.preferred_clip_len = None if self.tiling else (17 if a.causal else 16)
        self.spatial_multiple = sf
        self.latent_channels = a.z_channels
        self.codebook_size = a.codebook_size

        self._model: Any = None  # VidTokAutoencoder, built on first use (imports diffusers)
        self._weights: dict[str, Any] | None = None

    @property
    def family(self) -> str:
        a = self.arch
        v = "" if a.version.startswith("1.0") else f" v{a.version}"
        return f"vidtok {a.regularizer} {'causal' if a.causal else 'noncausal'}{v}"

    # ------------------------------------------------------------------ weights
    def expected_shapes(self) -> dict[str, list[int]]:
        """Encoder/decoder state-dict layout of this architecture (built on the meta device)."""
        from vidtok_bench.models.vidtok import build_vidtok, state_dict_shapes

        return state_dict_shapes(build_vidtok(self.arch, device="meta"))

    def _resolve_checkpoint(self) -> Path:
        if self.checkpoint:
            return Path(self.checkpoint).expanduser()
        return fetch_checkpoint(self.hub_path, repo_id=self.hub_repo)

    def load(self) -> Any:
        """Build the model (a ``VidTokAutoencoder``) and load its checkpoint (once)."""
        if self._model is not None:
            return self._model
        path = self._resolve_checkpoint()  # first: a missing checkpoint answers before diffusers is imported
        sd = load_state_dict(path)
        from vidtok_bench.models.vidtok import build_vidtok

        model = build_vidtok(self.arch, device="cpu")
        check_state_dict(model.state_dict(), sd, str(path), what=f"tokenizer '{self.name}' ({self._arch_text()})")
        model.load_state_dict({k: v for k, v in sd.items() if k.startswith(("encoder.", "decoder."))}, strict=True)
        self._model = self._layout(model.to(self.device).eval().requires_grad_(False))
        if self.compile:
            # compiles the forward in place (state-dict keys unchanged); the first call of each shape pays for it
            self._model.encoder.compile()
            self._model.decoder.compile()
        self._weights = {"path": str(path), "sha256": sha256_file(path), "version": self.arch.version,
                         "source": "local" if self.checkpoint else f"hf://{self.hub_repo}/{self.hub_path}"}
        return self._model

    def meta_copy(self) -> "VidTokTokenizer":
        """This tokenizer with a weightless model on the meta device: encode/decode give shapes,
        FLOPs and activation sizes (``vidtok_bench.flops``) without a checkpoint, memory or compute."""
        from vidtok_bench.models.vidtok import build_vidtok

        clone = copy.copy(self)
        clone.device = torch.device("meta")
        clone.precision = None  # autocast has no meta backend; FLOPs do not depend on it
        clone._model = clone._layout(build_vidtok(self.arch, device="meta"))
        clone._weights, clone._autotune = {}, StaticShapeAutotune(self.cudnn_benchmark)
        clone._generator = None  # a counting pass must not advance the video's random stream
        return clone

    def _arch_text(self) -> str:
        a = self.arch
        return f"v{a.version} {a.regularizer} {'causal' if a.causal else 'non-causal'}, ch={a.ch}, ch_mult={list(a.ch_mult)}, z_channels={a.z_channels}"

    def weights_info(self) -> dict[str, Any]:
        self.load()
        return dict(self._weights or {})

    def to(self, device: str | torch.device) -> "VidTokTokenizer":
        super().to(device)
        if self._model is not None:
            self._layout(self._model.to(self.device))
        return self

    # ------------------------------------------------------------------ helpers
    def _channels_last(self) -> bool:
        return self.device.type in ("cpu", "cuda") if self.channels_last is None else self.channels_last

    def _layout(self, model: Any) -> Any:
        from vidtok_bench.models.vidtok_fast import use_channels_last

        return use_channels_last(model, self._channels_last())

    @property
    def cudnn_benchmark(self) -> bool | None:
        """None: autotune calls that repeat the previous shape (``vidtok_bench.autotune``); True/False: forced."""
        return self._autotune.force

    @cudnn_benchmark.setter
    def cudnn_benchmark(self, value: bool | None) -> None:
        self._autotune.force = None if value is None else bool(value)

    @contextlib.contextmanager
    def _kernels(self, kind: str, x: torch.Tensor) -> Iterator[None]:
        """no_grad, the plugin's own precision when forced (Python API use; otherwise the caller's
        scope), and cuDNN autotuning on CUDA where shapes are static."""
        with self._autotune.scope(self.device, kind, tuple(x.shape)), torch.no_grad(), \
                (self.precision.scope(self.device) if self.precision else contextlib.nullcontext()):
            yield

    # ------------------------------------------------------------------ API
    def encode_moments(self, video: torch.Tensor) -> torch.Tensor:
        """Raw encoder output: 2*z channels (mean, logvar) for KL, pre-quantisation z for FSQ."""
        self.check_input(video)
        model = self.load()
        x = video.to(self.device, torch.float32)
        with self._kernels("encode", x):
            return model.encode_raw(x, tiling=self.tiling, t_chunk=self.t_chunk).float()

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B,3,T,H,W) -> float latent (B,z,T',H',W') for KL, int64 ids (B,T',H',W') for FSQ."""
        raw = self.encode_moments(video)
        model = self.load()
        if model.fsq is not None:
            return model.fsq.quantize(raw)[1]
        mean, logvar = model.split_moments(raw)
        if not self.sample_posterior:
            return mean
        noise = torch.randn(mean.shape, generator=self.random_stream(), dtype=torch.float32).to(mean.device)
        return mean + torch.exp(0.5 * logvar) * noise

    def latent_codes(self, video: torch.Tensor) -> torch.Tensor:
        """FSQ: the quantised float latent (B,z,T',H',W'); KL: the posterior mode."""
        raw = self.encode_moments(video)
        model = self.load()
        return model.fsq.quantize(raw)[0] if model.fsq is not None else model.split_moments(raw)[0]

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Float latent (B,z,T',H',W') or, for FSQ, integer ids (B,T',H',W') -> (B,3,T,H,W)."""
        model = self.load()
        z = latent.to(self.device)
        if not torch.is_floating_point(z):
            if model.fsq is None:
                raise InputShapeError(f"{self.name}: integer token ids given, but this is a continuous (KL) model")
            if z.ndim != 4:
                raise InputShapeError(f"{self.name}: token ids must be (B,T',H',W'), got {tuple(z.shape)}")
            try:
                z = model.fsq.indices_to_codes(z)
            except ValueError as exc:
                raise InputShapeError(f"{self.name}: {exc}") from None
        if z.ndim != 5 or z.shape[1] != self.arch.z_channels:
            raise InputShapeError(f"{self.name}: latent must be (B,{self.arch.z_channels},T',H',W'), got {tuple(z.shape)}")
        with self._kernels("decode", z):
            out = model.decode_latent(z.float(), tiling=self.tiling, t_chunk=self.t_chunk)
        return out.float()

    def tile_layout(self, frames: int, height: int, width: int) -> dict[str, Any] | None:
        """v1.1 long-video mode: the first frame alone, then temporal chunks of ``t_chunk`` frames
        (encoder and decoder cut at the same frames); no spatial tiles."""
        if not self.tiling:
            return None
        from vidtok_bench.models.vidtok import _chunks

        return {"t_starts": [s for s, _ in _chunks(frames, self.t_chunk)], "t_chunk": self.t_chunk}

    def info(self, weights: bool = True) -> dict[str, Any]:
        out = super().info(weights)
        a = self.arch
        out.update({
            "version": a.version,
            "regularizer": a.regularizer,
            "architecture": {
                "ch": a.ch, "ch_mult": list(a.ch_mult), "z_channels": a.z_channels, "num_res_blocks": a.num_res_blocks,
                "spatial_ds": a.spatial_ds_list, "spatial_us": a.spatial_us_list,
                "tempo_ds": a.tempo_ds_list, "tempo_us": a.tempo_us_list,
                "fsq_levels": list(a.levels) if a.regularizer == "fsq" else None,
            },
            "latent": "fsq_indices" if a.regularizer == "fsq" else ("posterior_sample" if self.sample_posterior else "posterior_mode"),
            "sample_posterior": self.sample_posterior,
            "seed": self.seed if self.sample_posterior else None,
            "tiling": self.tiling,
            "t_chunk": self.t_chunk if self.tiling else None,
            "channels_last": self._channels_last(),
            "compile": self.compile,
        })
        return out
