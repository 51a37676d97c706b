"""The one encode/decode interface every tokenizer plugin implements.

Videos are float tensors (B, 3, T, H, W) in [-1, 1]. ``encode`` returns a latent: a
float tensor for continuous tokenizers, integer token ids for discrete ones (codecs may
return any object their ``decode`` understands). The runner, not the plugin, fits clip
lengths to :attr:`Tokenizer.frame_rule` and records padding.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

import torch

from .config import torch_device
from .errors import InputShapeError
from .frames import FrameRule
from .hashing import video_seed
from .metrics.base import check_pixel_range
from .precision import Precision, get_precision


class Tokenizer(ABC):
    #: registry name of the plugin class (set by the registry decorator)
    plugin_name: str = ""

    #: (t, h, w) compression factors
    compression: tuple[int, int, int] = (1, 1, 1)
    causal: bool = False
    frame_rule: FrameRule = FrameRule()
    #: clip length the tokenizer is evaluated with by the vidtok protocol (None: whole video)
    preferred_clip_len: int | None = 17
    #: H and W must be multiples of this
    spatial_multiple: int = 1
    #: the smallest frames (height, width) it codes correctly
    min_frame_size: tuple[int, int] = (1, 1)
    latent_channels: int = 3
    #: codebook size for discrete tokenizers, None for continuous ones
    codebook_size: int | None = None
    #: storage bits per latent element for continuous tokenizers (bf16 by default)
    bits_per_element: float = 16.0
    #: frame rate of the clips being encoded, set by the runner: the protocol's fps, or the clips' own
    #: when the protocol keeps the native rate (codecs give it to their rate control); None when unknown
    frame_rate: float | None = None
    #: check the pixel values of every input (one pass); the runner turns it off for the frames its own
    #: preprocessing made, so that model time stays the model's
    check_values: bool = True
    #: seed of the random stream samples are drawn from (posterior sampling; see :meth:`start_video`)
    seed: int = 42
    _generator: torch.Generator | None = None

    def __init__(self, device: str | torch.device | None = None, name: str | None = None, precision: str | None = None):
        self.name = name or self.plugin_name
        self.device = torch_device(device or "cpu")
        #: forced precision (None: the run's); the runner's model scope uses it when set
        self.precision: Precision | None = get_precision(precision, f"tokenizer '{self.name}': precision") if precision else None

    @property
    def family(self) -> str:
        """The curve this tokenizer's results form in rate-distortion plots (its name by default)."""
        return self.name

    # ------------------------------------------------------------------ core API
    @abstractmethod
    def encode(self, video: torch.Tensor) -> Any:
        """(B,3,T,H,W) in [-1,1] -> latent."""

    @abstractmethod
    def decode(self, latent: Any) -> torch.Tensor:
        """latent -> (B,3,T,H,W) in [-1,1]."""

    def tile_layout(self, frames: int, height: int, width: int) -> dict[str, Any] | None:
        """Where this tokenizer cuts a clip of ``frames`` x ``height`` x ``width`` into pieces it codes
        separately (error profiles measure the seams): ``t_starts``, the first frame of each temporal
        chunk (``[0, 1, 17, ...]``), and/or ``tile`` / ``overlap``, spatial tiles as (height, width)
        pixels. None (the default) when each clip is coded whole."""
        return None

    def reconstruct(self, video: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(video))

    def start_video(self, video_id: str) -> None:
        """Called by the runner before a video's first clip: restarts :meth:`random_stream` from ``seed`` and
        ``video_id``, so a sample never depends on which videos the same process coded before (shards, ranks,
        resumed runs) nor on how the video's clips were batched."""
        self._generator = torch.Generator(device="cpu").manual_seed(video_seed(self.seed, video_id))

    def random_stream(self) -> torch.Generator:
        """The CPU generator a sampling tokenizer draws from: the current video's, else one seeded with ``seed``."""
        if self._generator is None:
            self._generator = torch.Generator(device="cpu").manual_seed(self.seed)
        return self._generator

    def to(self, device: str | torch.device) -> "Tokenizer":
        self.device = torch.device(device)
        return self

    # ------------------------------------------------------------------ rate
    @property
    def discrete(self) -> bool:
        return self.codebook_size is not None

    def latent_bits(self, latent: Any) -> float:
        """Bits needed to store ``latent`` (per the tokenizer's rate model)."""
        if self.discrete:
            return float(latent.numel()) * math.log2(self.codebook_size)
        return float(latent.numel()) * float(self.bits_per_element)

    def nominal_bits_per_pixel(self) -> float:
        """Bits per pixel implied by compression and latent size (no video needed)."""
        t, h, w = self.compression
        return self.bits_per_latent_position() / (t * h * w)

    def bits_per_latent_position(self) -> float:
        """Bits of one latent (t, h, w) position: a discrete token covers all latent channels; a continuous
        latent stores each channel."""
        return math.log2(self.codebook_size) if self.discrete else self.latent_channels * self.bits_per_element

    def latent_bits_for(self, frames: int, height: int, width: int) -> float:
        """Bits of the latent a ``frames x height x width`` clip takes (per the rate model), without encoding it:
        the clip padded to the frame rule, one latent frame per ``t`` frames (a causal model's first frame on its
        own), one latent pixel per ``h x w``. What a codec's ``match=`` spends on the same clip."""
        ft, fh, fw = self.compression
        t = self.frame_rule.fit_up(int(frames))
        latent_frames = 1 + (t - 1) // ft if self.causal else -(-t // ft)
        return float(latent_frames * -(-int(height) // fh) * -(-int(width) // fw) * self.bits_per_latent_position())

    # ------------------------------------------------------------------ checks
    def check_input(self, video: torch.Tensor) -> None:
        if not isinstance(video, torch.Tensor):
            raise InputShapeError(f"{self.name}: expected a torch tensor (B,3,T,H,W), got {type(video).__name__}")
        if video.ndim != 5 or video.shape[1] != 3:
            raise InputShapeError(f"{self.name}: expected a video of shape (B,3,T,H,W), got {tuple(video.shape)}")
        if not video.is_floating_point():  # uint8 frames would saturate: every value past 1
            raise InputShapeError(f"{self.name}: expected floating-point pixels in [-1,1], got {video.dtype} "
                                  "(uint8 frames: x.float() / 127.5 - 1)")
        if video.shape[0] == 0:
            raise InputShapeError(f"{self.name}: empty batch {tuple(video.shape)}")
        t, h, w = video.shape[2:]
        if not self.frame_rule.accepts(t):
            raise InputShapeError(
                f"{self.name}: {t} frames given, but it accepts {self.frame_rule.describe()}; "
                f"the runner pads clips to {self.frame_rule.fit_up(t)} by repeating the last frame"
            )
        m = self.spatial_multiple
        if h % m or w % m:
            raise InputShapeError(f"{self.name}: frame size {h}x{w} is not a multiple of {m}; choose dataset.size divisible by {m}")
        mh, mw = self.min_frame_size
        if h < mh or w < mw:
            raise InputShapeError(f"{self.name}: frames of {h}x{w} are too small; it takes at least {mh}x{mw} (height x width)")
        if self.check_values and video.numel() and video.device.type != "meta":  # 0..255 floats come back white
            check_pixel_range(self.name, "the video", video)

    def info(self, weights: bool = True) -> dict[str, Any]:
        """Everything a results file must record about this tokenizer.

        ``weights=False`` skips :meth:`weights_info` (which may load or download weights), for listings.
        """
        return {
            "name": self.name,
            "plugin": self.plugin_name,
            "family": self.family,
            "compression": list(self.compression),
            "causal": self.causal,
            "frame_rule": self.frame_rule.describe(),
            "spatial_multiple": self.spatial_multiple,
            "latent_channels": self.latent_channels,
            "codebook_size": self.codebook_size,
            "bits_per_element": None if self.discrete else self.bits_per_element,
            "nominal_bits_per_pixel": self.nominal_bits_per_pixel(),
            "weights": self.weights_info() if weights else None,
            "precision": self.precision.name if self.precision else None,
        }

    def weights_info(self) -> dict[str, Any]:
        """Checkpoint path/sha256 etc.; weight-free tokenizers return {}."""
        return {}
