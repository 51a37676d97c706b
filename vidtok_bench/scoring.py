"""What a protocol does to a clip pair before scoring — applied once here, before every metric.

The protocol's ``scoring`` block says whether reconstructions are clamped to [-1, 1] (the VidTok
evaluator clamps once, before PSNR, SSIM *and* LPIPS) and whether frames that only repeat a
clip's last frame are scored (the VidTok evaluator scores its padded last clip whole). Metrics
then see exactly the tensors the protocol's evaluator would give them, and re-implement none of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch

from .errors import ConfigError, check_choice
from .results import ScoringBlock

TAIL_MODES = ("scored", "excluded")
NONFINITE = "NaN -> 0, +inf -> 1, -inf -> -1 before clamping; the clip is listed in frames.nonfinite_clips"


@dataclass(frozen=True)
class Scoring:
    clamp: bool = True
    tail_frames: str = "excluded"

    @classmethod
    def from_protocol(cls, protocol: dict[str, Any]) -> "Scoring":
        block = dict(protocol.get("scoring") or {})
        unknown = set(block) - {"clamp", "tail_frames"}
        if unknown:
            raise ConfigError(f"protocol '{protocol.get('name')}': unknown scoring option(s) {', '.join(sorted(unknown))}; "
                              "valid: clamp, tail_frames")
        tail = check_choice("protocol.scoring.tail_frames", block.get("tail_frames", "excluded"), TAIL_MODES)
        return cls(clamp=bool(block.get("clamp", True)), tail_frames=str(tail))

    @property
    def score_tail(self) -> bool:
        return self.tail_frames == "scored"

    def record(self) -> ScoringBlock:
        return ScoringBlock(clamp=self.clamp, tail_frames=self.tail_frames, input_range=[-1.0, 1.0], nonfinite=NONFINITE)

    def prepare(self, recon: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(recon prepared for scoring, per-clip finiteness): non-finite values replaced, then clamped."""
        finite = torch.isfinite(recon).flatten(1).all(dim=1)
        if not bool(finite.all()):
            recon = torch.nan_to_num(recon, nan=0.0, posinf=1.0, neginf=-1.0)
        if self.clamp:
            recon = recon.clamp(-1.0, 1.0)
        return recon, finite.cpu()

    def scored_frames(self, length: int, valid: int) -> int:
        return length if self.score_tail else valid

    def groups(self, lengths: list[int]) -> Iterator[tuple[int, list[int]]]:
        """(scored frame count, clip indices) groups of a batch, so each group is one batched metric call."""
        by_len: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            by_len.setdefault(n, []).append(i)
        yield from by_len.items()
