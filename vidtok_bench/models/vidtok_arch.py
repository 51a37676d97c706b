"""VidTok architecture parameters (light: no torch or diffusers import, so configs build fast)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class VidTokArch:
    """Architecture of one VidTok model, with the official parameter names."""

    version: str = "1.0"  # "1.0" | "1.1"
    causal: bool = True
    regularizer: str = "kl"  # "kl" | "fsq"
    z_channels: int = 4
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    spatial_ds: tuple[int, ...] | None = None
    spatial_us: tuple[int, ...] | None = None
    tempo_ds: tuple[int, ...] | None = None
    tempo_us: tuple[int, ...] | None = None
    fsq_levels: tuple[int, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.version not in ("1.0", "1.1"):
            raise ValueError(f"VidTok version must be '1.0' or '1.1', got {self.version!r}")
        if self.regularizer not in ("kl", "fsq"):
            raise ValueError(f"regularizer must be 'kl' or 'fsq', got {self.regularizer!r}")
        if self.version == "1.1" and not self.causal:
            raise ValueError("VidTok v1.1 models are causal only")
        if self.regularizer == "fsq":
            levels = self.fsq_levels or (8,) * self.z_channels
            if len(levels) != self.z_channels:
                raise ValueError(f"fsq_levels {list(levels)} must have z_channels={self.z_channels} entries")

    # resolved lists, as the official modules resolve their defaults
    @property
    def n_levels(self) -> int:
        return len(self.ch_mult)

    @property
    def spatial_ds_list(self) -> list[int]:
        return list(range(self.n_levels - 1)) if self.spatial_ds is None else list(self.spatial_ds)

    @property
    def spatial_us_list(self) -> list[int]:
        return list(range(1, self.n_levels)) if self.spatial_us is None else list(self.spatial_us)

    @property
    def tempo_ds_list(self) -> list[int]:
        return [self.n_levels - 2, self.n_levels - 3] if self.tempo_ds is None else list(self.tempo_ds)

    @property
    def tempo_us_list(self) -> list[int]:
        return [1, 2] if self.tempo_us is None else list(self.tempo_us)

    @property
    def time_factor(self) -> int:
        return 2 ** len([i for i in self.tempo_ds_list if i in self.spatial_ds_list])

    @property
    def space_factor(self) -> int:
        return 2 ** len(self.spatial_ds_list)

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(self.fsq_levels or (8,) * self.z_channels)

    @property
    def codebook_size(self) -> int | None:
        return math.prod(self.levels) if self.regularizer == "fsq" else None
