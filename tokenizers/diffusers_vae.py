"""diffusers' video autoencoders (CogVideoX, HunyuanVideo, LTX-Video, Wan, Mochi, Cosmos,
Allegro, ...) behind the one Tokenizer interface: the VAEs users would pick instead of VidTok.

Weights come from the Hugging Face hub cache (``pretrained`` = repo id or a local folder,
``subfolder`` usually ``vae``) and are loaded lazily on the first encode/decode, so
``vidtok-bench list tokenizers`` never downloads. ``config={...}`` instead builds a randomly
initialised model with ``from_config`` (no download; used by the tests).

The latent is the raw VAE latent (posterior mode, or with ``sample=true`` a sample drawn from the
video's seeded stream, as VidTok draws; see ``Tokenizer.start_video``); the scaling/shift factors
the diffusion models apply are an affine map that does not change reconstruction, so they are
recorded in ``info()`` but not applied.
"""
from __future__ import annotations

import contextlib
import copy
import warnings
from pathlib import Path
from typing import Any

import torch

from vidtok_bench.errors import CheckpointError, ConfigError, InputShapeError, check_choice
from vidtok_bench.frames import FrameRule
from vidtok_bench.hub import hub_offline, probe
from vidtok_bench.registry import register_tokenizer
from vidtok_bench.tokenizer import Tokenizer

#: classes known to work through this adapter, with quirks the generic path must know
KNOWN_CLASSES: dict[str, dict[str, Any]] = {
    "AutoencoderKLCogVideoX": {},
    "AutoencoderKLHunyuanVideo": {},
    "AutoencoderKLHunyuanVideo15": {},
    "AutoencoderKLLTXVideo": {"temb": True},
    "AutoencoderKLLTX2Video": {"temb": True},
    "AutoencoderKLWan": {},
    "AutoencoderKLMochi": {},
    "AutoencoderKLCosmos": {},
    "AutoencoderKLMagvit": {},
    # Allegro encodes/decodes only tile by tile (24-frame, sample_size-pixel tiles) and returns (B,T,C,H,W)
    "AutoencoderKLAllegro": {"needs_tiling": True, "btchw_output": True},
}
DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


def model_factors(model: Any) -> tuple[int, int, int]:
    """(temporal factor, spatial factor, latent channels) read from a built diffusers VAE."""
    cfg = dict(model.config)
    cls = type(model).__name__
    attrs = vars(model)  # instance attributes only: config-backed getattr is deprecated
    t = attrs.get("temporal_compression_ratio") or cfg.get("temporal_compression_ratio") or cfg.get("scale_factor_temporal")
    s = attrs.get("spatial_compression_ratio") or cfg.get("spatial_compression_ratio") or cfg.get("scale_factor_spatial")
    if cls == "AutoencoderKLCogVideoX" and not s:
        s = 2 ** (len(cfg["block_out_channels"]) - 1)
    if cls == "AutoencoderKLWan" and not t:
        t = 2 ** sum(bool(v) for v in cfg["temperal_downsample"])
    c = cfg.get("latent_channels") or cfg.get("z_dim")
    if not (t and s and c):
        raise CheckpointError(f"{cls}: cannot read its temporal/spatial factors and latent channels from the model config")
    return int(t), int(s), int(c)


def hash_weights(folder: Path) -> dict[str, Any]:
    """sha256 of every weight file in a diffusers model folder (recorded in results)."""
    import hashlib

    from vidtok_bench.hashing import sha256_file

    files = {}
    for f in sorted(folder.iterdir()):
        if f.suffix in (".safetensors", ".bin") and f.is_file():
            files[f.name] = sha256_file(f)
    if not files:
        return {}
    combined = files[next(iter(files))] if len(files) == 1 else hashlib.sha256("".join(f"{k}:{v}\n" for k, v in files.items()).encode()).hexdigest()
    return {"sha256": combined, "files": files}


def _unreachable(exc: BaseException) -> bool:
    """Whether a loading error was caused by having no network or no cached file."""
    seen: BaseException | None = exc
    while seen is not None:
        kind = type(seen).__name__
        if "Connect" in kind or "LocalEntryNotFound" in kind or "Offline" in kind or "Timeout" in kind:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def _quiet_loading():
    """diffusers' advice to install accelerate and huggingface_hub's deprecation warning for an argument diffusers
    passes are not the user's to act on: loading says one line when it fails, nothing when it works."""
    from diffusers.utils import logging as dlogging

    level = dlogging.get_verbosity()
    dlogging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*")
            yield
    finally:
        dlogging.set_verbosity(level)


@register_tokenizer("diffusers_vae")
class DiffusersVAETokenizer(Tokenizer):
    """A diffusers video VAE (``vae_class``) as a continuous tokenizer."""

    def __init__(
        self,
        vae_class: str = "AutoencoderKLCogVideoX",
        pretrained: str | None = None,
        subfolder: str | None = "vae",
        revision: str | None = None,
        cache_dir: str | None = None,
        local_files_only: bool | None = None,
        config: dict[str, Any] | None = None,
        temporal_factor: int | None = None,
        spatial_factor: int | None = None,
        latent_channels: int | None = None,
        frame_rule: str | None = None,
        min_frames: int | None = None,
        causal: bool = True,
        preferred_clip_len: int | None = 17,
        scaling_factor: float | None = None,
        shift_factor: float | None = None,
        tiling: bool = False,
        slicing: bool = False,
        framewise: bool | None = None,
        torch_dtype: str = "float32",
        sample: bool = False,
        seed: int = 42,
        decode_timestep: float = 0.0,
        bits_per_element: float = 16.0,
        **kw: Any,
    ):
        super().__init__(**kw)
        import diffusers

        if not hasattr(diffusers, vae_class):
            raise ConfigError(f"tokenizer '{self.name}': diffusers {diffusers.__version__} has no class '{vae_class}'; known video VAEs: {', '.join(KNOWN_CLASSES)}")
        check_choice(f"tokenizer '{self.name}': torch_dtype", torch_dtype, DTYPES)
        if pretrained is None and config is None:
            raise ConfigError(f"tokenizer '{self.name}': set tokenizer.pretrained=REPO_ID_OR_DIR (or tokenizer.config={{...}} for a random model)")
        self.vae_class = vae_class
        self.quirks = KNOWN_CLASSES.get(vae_class, {})
        self.pretrained, self.subfolder, self.revision = pretrained, subfolder, revision
        self.cache_dir, self.local_files_only = cache_dir, local_files_only
        self.config_override = dict(config) if config is not None else None
        self.scaling_factor, self.shift_factor = scaling_factor, shift_factor
        self.tiling = bool(tiling or self.quirks.get("needs_tiling"))
        self.slicing, self.framewise = bool(slicing), framewise
        self.torch_dtype = torch_dtype
        self.sample, self.seed = bool(sample), int(seed)
        self.decode_timestep = float(decode_timestep)
        self.bits_per_element = float(bits_per_element)
        self.causal = bool(causal)
        self.preferred_clip_len = preferred_clip_len
        self._model: Any = None
        self._source: dict[str, Any] = {}
        self._rule_text, self._min_frames = frame_rule, min_frames
        self._set_factors(temporal_factor, spatial_factor, latent_channels)
        if self.config_override is not None:  # cheap: build now so factors come from the model
            self._build()

    # ------------------------------------------------------------------ configuration
    def _set_factors(self, t: int | None, s: int | None, c: int | None) -> None:
        if t and s and c:
            self.compression = (int(t), int(s), int(s))
            self.latent_channels = int(c)
            self.spatial_multiple = int(s)
            rule = FrameRule.parse(self._rule_text or f"{int(t)}k+1")
            if self._min_frames:
                rule = FrameRule(rule.multiple, rule.remainder, int(self._min_frames))
            self.frame_rule = rule
        elif self.config_override is None:
            raise ConfigError(f"tokenizer '{self.name}': temporal_factor, spatial_factor and latent_channels are required with pretrained weights")

    def _build(self) -> None:
        import diffusers

        cls = getattr(diffusers, self.vae_class)
        dtype = DTYPES[self.torch_dtype]
        if self.config_override is not None:
            try:
                model = cls.from_config(self.config_override)
            except (TypeError, ValueError, AssertionError, RuntimeError) as exc:
                raise ConfigError(f"tokenizer '{self.name}': {self.vae_class}.from_config failed: {str(exc).splitlines()[0]}") from None
            self._source = {"source": "random_config", "config": self.config_override}
        else:
            model = self._from_pretrained(cls, dtype)
        model = model.to(device=self.device, dtype=dtype).eval()
        t, s, c = model_factors(model)
        if self.config_override is None and (t, s, c) != (self.compression[0], self.compression[1], self.latent_channels):
            raise CheckpointError(
                f"tokenizer '{self.name}': weights from {self.pretrained} have factors t={t}, s={s}, channels={c}, "
                f"but the config says t={self.compression[0]}, s={self.compression[1]}, channels={self.latent_channels}"
            )
        self._set_factors(t, s, c)
        if self.tiling:
            model.enable_tiling()
        if self.slicing:
            model.enable_slicing()
        if self.framewise is not None:
            for attr in ("use_framewise_encoding", "use_framewise_decoding"):
                if hasattr(model, attr):
                    setattr(model, attr, bool(self.framewise))
        cfg = dict(model.config)
        if self.scaling_factor is None:
            self.scaling_factor = cfg.get("scaling_factor")
        if self.shift_factor is None:
            self.shift_factor = cfg.get("shift_factor")
        self._model = model

    def _from_pretrained(self, cls: Any, dtype: torch.dtype) -> Any:
        src = str(self.pretrained)
        subfolder = self.subfolder
        local = Path(src).expanduser()
        if not local.exists() and src.startswith(("/", "./", "../", "~")):  # a folder meant, not a hub id
            raise CheckpointError(f"tokenizer.pretrained={src}: no such folder (a local diffusers folder, or a hub "
                                  "id such as 'THUDM/CogVideoX-2b')")
        if local.is_dir():
            if not (subfolder and (local / subfolder / "config.json").is_file()):
                subfolder = None  # the folder itself holds config.json
            if not ((local / subfolder) if subfolder else local).joinpath("config.json").is_file():
                raise CheckpointError(f"{local}: no config.json (expected a diffusers {self.vae_class} folder, or one with a '{self.subfolder}' subfolder)")
        offline = self.local_files_only if self.local_files_only is not None else hub_offline()
        unreachable = None
        if not offline and not local.is_dir():  # one request decides, as for VidTok checkpoints (vidtok_bench.hub)
            unreachable = probe(src, f"{subfolder}/config.json" if subfolder else "config.json", self.revision)
            offline = unreachable is not None
        try:
            with _quiet_loading():
                model = cls.from_pretrained(
                    src, subfolder=subfolder, revision=self.revision, cache_dir=self.cache_dir,
                    local_files_only=offline, torch_dtype=dtype,
                )
        except Exception as exc:  # hub / IO / format errors all become one actionable line
            where = f"'{src}'" + (f" (subfolder '{subfolder}')" if subfolder else "")
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            if unreachable:
                first = f"not in the Hugging Face cache, and {unreachable}"
            elif offline or _unreachable(exc):
                first = "not in the Hugging Face cache" + (" (HF_HUB_OFFLINE=1)" if offline else " and the hub cannot be reached")
            hint = (
                f"download it where there is network (`hf download {src}"
                + (f" --include '{subfolder}/*'" if subfolder else "")
                + "`) and pass tokenizer.pretrained=LOCAL_DIR or set HF_HOME to that cache"
            ) if not local.is_dir() else "check the folder holds a diffusers config.json and weights"
            raise CheckpointError(f"tokenizer '{self.name}': cannot load {self.vae_class} weights from {where}: {first[:200]}; {hint}") from None
        folder = self._resolved_folder(src, subfolder, local)
        self._source = {"source": "local" if local.is_dir() else "hub", "pretrained": src, "subfolder": subfolder,
                        "revision": self.revision, "path": str(folder) if folder else None}
        if folder is not None:
            snapshot = [p for p in (folder, *folder.parents) if p.parent.name == "snapshots"]
            if snapshot:  # hub cache layout: .../snapshots/<commit>/<subfolder>
                self._source["commit"] = snapshot[0].name
            self._source.update(hash_weights(folder))
        return model

    def _resolved_folder(self, src: str, subfolder: str | None, local: Path) -> Path | None:
        """The folder the weights were read from (a hub-cache snapshot folder for hub ids)."""
        if local.is_dir():
            return local / subfolder if subfolder else local
        try:
            from huggingface_hub import try_to_load_from_cache

            cfg = try_to_load_from_cache(src, f"{subfolder}/config.json" if subfolder else "config.json",
                                         cache_dir=self.cache_dir, revision=self.revision)
        except Exception:
            return None
        return Path(cfg).parent if isinstance(cfg, str) else None

    @property
    def model(self) -> Any:
        """The diffusers model, loaded on first use (so listing tokenizers never downloads)."""
        if self._model is None:
            self._build()
        return self._model

    def meta_copy(self) -> "DiffusersVAETokenizer":
        """This tokenizer with the same architecture built on the meta device (no weights, memory or
        compute): encode/decode give shapes and FLOPs (``vidtok_bench.flops``). Builds the real model
        first when it is not loaded, for its config (a download is never made for this alone: the
        runner counts only after the weights are loaded)."""
        import diffusers

        model = self.model
        with torch.device("meta"):
            meta = getattr(diffusers, self.vae_class).from_config(dict(model.config))
        meta = meta.to(device="meta", dtype=DTYPES[self.torch_dtype]).eval()
        for attr in ("use_tiling", "use_slicing", "use_framewise_encoding", "use_framewise_decoding"):
            if hasattr(model, attr):
                setattr(meta, attr, getattr(model, attr))
        clone = copy.copy(self)
        clone.device, clone._model = torch.device("meta"), meta
        clone._generator = None  # a counting pass must not advance the video's random stream
        return clone

    def to(self, device: str | torch.device) -> "DiffusersVAETokenizer":
        super().to(device)
        if self._model is not None:
            self._model.to(self.device)
        return self

    # ------------------------------------------------------------------ core API
    def check_input(self, video: torch.Tensor) -> None:
        super().check_input(video)
        if self.vae_class == "AutoencoderKLAllegro":
            m = self.model
            kt, kh, kw = m.kernel
            st, sh, sw = m.stride
            t, h, w = video.shape[2:]
            if (t - kt) % st or (h - kh) % sh or (w - kw) % sw or min(t - kt, h - kh, w - kw) < 0:
                raise InputShapeError(
                    f"{self.name}: Allegro's VAE works only on whole tiles: frames {kt}+{st}k, height {kh}+{sh}k, width {kw}+{sw}k; got {t}x{h}x{w}"
                )

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        self.check_input(video)
        model = self.model
        x = video.to(self.device, DTYPES[self.torch_dtype])
        dist = model.encode(x).latent_dist
        if self.sample:
            return dist.sample(generator=self.random_stream())
        return dist.mode()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        model = self.model
        z = latent.to(self.device, DTYPES[self.torch_dtype])
        if self.quirks.get("temb") and model.config.get("timestep_conditioning"):
            temb = torch.full((z.shape[0],), self.decode_timestep, device=self.device, dtype=z.dtype)
            out = model.decode(z, temb=temb).sample
        else:
            out = model.decode(z).sample
        if self.quirks.get("btchw_output"):
            out = out.permute(0, 2, 1, 3, 4)
        return out.float().clamp(-1, 1).contiguous()

    # ------------------------------------------------------------------ records
    def info(self, weights: bool = True) -> dict[str, Any]:
        out = super().info(weights)
        out.update({
            "vae_class": self.vae_class,
            "scaling_factor": self.scaling_factor,
            "shift_factor": self.shift_factor,
            "latent": "posterior sample" if self.sample else "posterior mode",
            "seed": self.seed if self.sample else None,
            "torch_dtype": self.torch_dtype,
            "tiling": self.tiling,
            "slicing": self.slicing,
        })
        return out

    def weights_info(self) -> dict[str, Any]:
        if self._source:
            return dict(self._source)
        if self.config_override is not None:
            return {"source": "random_config"}
        return {"source": "hub", "pretrained": self.pretrained, "subfolder": self.subfolder, "revision": self.revision, "loaded": False}
