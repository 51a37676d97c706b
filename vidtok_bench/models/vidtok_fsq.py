"""Finite scalar quantisation as VidTok uses it at inference: bound, round, index.

Only the per-element rounding is computed. The official regularizer also builds a
tokens x codebook distance matrix for a training loss (5120 x 262144 floats for one
17x256x256 clip); inference never needs it, so it does not exist here.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn


class FSQ(nn.Module):
    """Levels L_i per channel; codes in {-(L//2) .. L-1-L//2}/(L//2); index = sum digit_i * prod(L_<i)."""

    def __init__(self, levels: Sequence[int], eps: float = 1e-3):
        super().__init__()
        self.levels = tuple(int(v) for v in levels)
        self.eps = eps
        self.codebook_size = math.prod(self.levels)
        basis = [1]
        for lv in self.levels[:-1]:
            basis.append(basis[-1] * lv)
        # non-persistent: checkpoints carry no FSQ state
        self.register_buffer("_levels", torch.tensor(self.levels, dtype=torch.int64), persistent=False)
        self.register_buffer("_basis", torch.tensor(basis, dtype=torch.int64), persistent=False)

    def _per_channel(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lv = torch.tensor(self.levels, dtype=torch.float32, device=device)
        half_l = (lv - 1) * (1 + self.eps) / 2
        offset = torch.where(torch.tensor([v % 2 == 0 for v in self.levels], device=device), 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return half_l, offset, shift

    def digits(self, z: torch.Tensor) -> torch.Tensor:
        """(B,d,...) float -> (B,d,...) int64 level digits in [0, L_i)."""
        z = z.float().movedim(1, -1)
        half_l, offset, shift = self._per_channel(z.device)
        bounded = torch.tanh(z + shift) * half_l - offset
        half_w = torch.tensor([v // 2 for v in self.levels], dtype=torch.int64, device=z.device)
        return (bounded.round().to(torch.int64) + half_w).movedim(-1, 1)

    def digits_to_codes(self, digits: torch.Tensor) -> torch.Tensor:
        """(B,d,...) digits -> (B,d,...) float32 codes."""
        half_w = torch.tensor([v // 2 for v in self.levels], dtype=torch.float32, device=digits.device)
        shape = (1, -1) + (1,) * (digits.ndim - 2)
        half_w = half_w.view(shape)
        return (digits.float() - half_w) / half_w

    def digits_to_indices(self, digits: torch.Tensor) -> torch.Tensor:
        """(B,d,...) -> (B,...) int64 token ids (channel 0 least significant)."""
        basis = self._basis.to(digits.device).view((1, -1) + (1,) * (digits.ndim - 2))
        return (digits * basis).sum(dim=1)

    def indices_to_digits(self, indices: torch.Tensor) -> torch.Tensor:
        """(B,...) token ids -> (B,d,...) digits."""
        idx = indices.to(torch.int64).unsqueeze(1)
        shape = (1, -1) + (1,) * (idx.ndim - 2)
        basis = self._basis.to(idx.device).view(shape)
        levels = self._levels.to(idx.device).view(shape)
        return (idx // basis) % levels

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-quantisation latent -> (codes float32 (B,d,...), indices int64 (B,...))."""
        if z.shape[1] != len(self.levels):
            raise ValueError(f"FSQ expects {len(self.levels)} latent channels, got {z.shape[1]}")
        d = self.digits(z)
        return self.digits_to_codes(d), self.digits_to_indices(d)

    def indices_to_codes(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.numel() and indices.device.type != "meta" and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(f"token ids must lie in [0, {self.codebook_size}), got [{int(indices.min())}, {int(indices.max())}]")
        return self.digits_to_codes(self.indices_to_digits(indices))
