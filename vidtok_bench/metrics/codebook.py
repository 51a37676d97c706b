"""Latent-space statistics: codebook usage of discrete tokenizers and per-channel latent moments.

Both are mergeable accumulators (``update`` per batch, ``merge`` across shards/processes,
``state_dict``/``load_state_dict`` holding tensors only) so a sharded run gives the 1-process number.

:class:`CodebookUsage` counts token indices (int64, exact; merging is integer addition).
``compute()`` over the empirical token distribution ``p_k = n_k / N``:

* ``used_fraction = #{k : n_k > 0} / K``
* ``entropy_nats = -sum_k p_k ln p_k``, ``perplexity = exp(entropy_nats)``,
  ``entropy_bits = entropy_nats / ln 2`` (bits per token)
* ``nominal_bits = log2 K`` (bits per token without entropy coding)
* with ``pixels_per_token`` (e.g. T*H*W / (T'*H'*W') of the tokenizer): ``bpp_entropy =
  entropy_bits / pixels_per_token`` (the rate of an ideal order-0 entropy coder over this
  distribution) and ``bpp_nominal = nominal_bits / pixels_per_token``.

:class:`LatentStats` keeps, per channel (dim 1 of the latents), ``n`` (int64), ``sum x`` and
``sum x^2`` (float64 sums of each batch, added exactly: :mod:`.exactsum`); ``mean = sum x / n``,
``var = sum x^2 / n - mean^2`` (population), ``std = sqrt(max(var, 0))``. Merging adds the statistics
exactly, so shards, resumed runs and a single run give the same numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from ..registry import register_metric
from ..results import MetricInfo
from .base import LatentMetric, rows_by_video
from .exactsum import ExactSums

#: codebooks up to this size are counted densely with ``torch.bincount``; larger ones sparsely
DENSE_MAX = 1 << 18


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device(device if device is not None else "cpu")


class CodebookUsage:
    """Token-index counts of a codebook of ``codebook_size`` entries (see module doc)."""

    def __init__(self, codebook_size: int, device: str | torch.device | None = None):
        if int(codebook_size) < 1:
            raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
        self.codebook_size = int(codebook_size)
        self.device = _device(device)
        self.dense = self.codebook_size <= DENSE_MAX
        self._reset()

    def _reset(self) -> None:
        self._counts = torch.zeros(self.codebook_size if self.dense else 0, dtype=torch.int64, device=self.device)
        self._index = torch.zeros(0, dtype=torch.int64, device=self.device)  # sparse: sorted used indices

    # -------------------------------------------------------------- accumulate
    def update(self, indices: torch.Tensor) -> None:
        """Count every entry of an integer tensor of any shape (e.g. (B,T',H',W') FSQ indices)."""
        if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
            raise TypeError(f"codebook indices must be an integer tensor, got {indices.dtype}")
        flat = indices.reshape(-1).to(self.device, torch.int64)
        if flat.numel() == 0:
            return
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi >= self.codebook_size:
            raise ValueError(f"codebook indices must lie in [0, {self.codebook_size}), got [{lo}, {hi}]")
        if self.dense:
            self._counts += torch.bincount(flat, minlength=self.codebook_size)
        else:
            self._add(*torch.unique(flat, return_counts=True))

    def _add(self, idx: torch.Tensor, cnt: torch.Tensor) -> None:
        """Add counts ``cnt`` at codebook entries ``idx`` (1-D, int)."""
        idx, cnt = idx.to(self.device, torch.int64), cnt.to(self.device, torch.int64)
        if self.dense:
            self._counts.index_add_(0, idx, cnt)
            return
        self._index, inverse = torch.unique(torch.cat([self._index, idx]), return_inverse=True)
        self._counts = torch.zeros(len(self._index), dtype=torch.int64, device=self.device).scatter_add_(
            0, inverse, torch.cat([self._counts, cnt]))

    def merge(self, other: "CodebookUsage") -> "CodebookUsage":
        """Add ``other``'s counts into this accumulator (exact) and return it."""
        if other.codebook_size != self.codebook_size:
            raise ValueError(f"cannot merge codebook sizes {self.codebook_size} and {other.codebook_size}")
        self._add(*other.nonzero_counts())
        return self

    def nonzero_counts(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(indices, counts) of the used codebook entries, indices ascending."""
        if self.dense:
            idx = torch.nonzero(self._counts).reshape(-1)
            return idx, self._counts[idx]
        keep = self._counts > 0
        return self._index[keep], self._counts[keep]

    def counts(self) -> torch.Tensor:
        """Dense (codebook_size,) int64 counts (materialised for sparse codebooks)."""
        if self.dense:
            return self._counts.clone()
        return torch.zeros(self.codebook_size, dtype=torch.int64, device=self.device).index_put_(
            (self._index,), self._counts)

    # -------------------------------------------------------------- state
    def state_dict(self) -> dict[str, torch.Tensor]:
        idx, cnt = self.nonzero_counts()
        return {"codebook_size": torch.tensor(self.codebook_size), "indices": idx.cpu(), "counts": cnt.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if int(state["codebook_size"]) != self.codebook_size:
            raise ValueError(f"state is for codebook size {int(state['codebook_size'])}, not {self.codebook_size}")
        idx, cnt = state["indices"].reshape(-1), state["counts"].reshape(-1)
        if idx.shape != cnt.shape or (idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.codebook_size)):
            raise ValueError("codebook state: indices and counts do not match the codebook")
        self._reset()
        self._add(idx, cnt)

    # -------------------------------------------------------------- result
    def compute(self, pixels_per_token: float | None = None) -> dict[str, Any]:
        """Usage, perplexity and entropy of the counted tokens (definitions in the module doc)."""
        _, cnt = self.nonzero_counts()
        n = int(cnt.sum())
        nominal = math.log2(self.codebook_size)
        out: dict[str, Any] = {"codebook_size": self.codebook_size, "tokens": n, "used": int(cnt.numel()),
                               "used_fraction": cnt.numel() / self.codebook_size, "nominal_bits": nominal}
        if n == 0:
            out.update(entropy_nats=float("nan"), entropy_bits=float("nan"), perplexity=float("nan"))
        else:
            p = cnt.double() / n
            h = float(-(p * p.log()).sum())
            out.update(entropy_nats=h, entropy_bits=h / math.log(2), perplexity=math.exp(h))
        if pixels_per_token is not None:
            if pixels_per_token <= 0:
                raise ValueError(f"pixels_per_token must be > 0, got {pixels_per_token}")
            out.update(pixels_per_token=float(pixels_per_token), bpp_entropy=out["entropy_bits"] / pixels_per_token,
                       bpp_nominal=nominal / pixels_per_token)
        return out


class LatentStats:
    """Per-channel mean/std of continuous latents (channel dim 1) from float64 n, sum x, sum x^2."""

    def __init__(self, channels: int, device: str | torch.device | None = None):
        self.channels = int(channels)
        self.device = _device(device)
        self.n = torch.zeros((), dtype=torch.int64, device=self.device)
        self._sum, self._sum_sq = ExactSums(self.channels), ExactSums(self.channels)

    @property
    def sum(self) -> torch.Tensor:
        """(C,) float64 sum of x (the exact sum rounded once)."""
        return self._sum.values(self.device)

    @property
    def sum_sq(self) -> torch.Tensor:
        """(C,) float64 sum of x^2 (the exact sum rounded once)."""
        return self._sum_sq.values(self.device)

    def update(self, latents: torch.Tensor) -> None:
        """Accumulate latents (B,C,...) (e.g. (B,C,T',H',W') posterior means), clip by clip: the float64 sums of
        each clip are added exactly, so the numbers never depend on how clips were batched."""
        if latents.ndim < 2 or latents.shape[1] != self.channels:
            raise ValueError(f"latents must be (B,{self.channels},...), got {tuple(latents.shape)}")
        for z in latents:
            x = z.to(self.device, torch.float64).reshape(self.channels, -1)
            self.n += x.shape[1]
            self._sum.add(x.sum(1))
            self._sum_sq.add(x.pow(2).sum(1))

    def merge(self, other: "LatentStats") -> "LatentStats":
        if other.channels != self.channels:
            raise ValueError(f"cannot merge {self.channels} and {other.channels} channels")
        self.n += other.n.to(self.device)
        self._sum.merge(other._sum)
        self._sum_sq.merge(other._sum_sq)
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``n`` and the sums' exact partials, (C, m) each (an older state's (C,) sums load too)."""
        return {"n": self.n.cpu().clone(), "sum": self._sum.to_tensor(), "sum_sq": self._sum_sq.to_tensor()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["sum"].shape[0] != self.channels or state["sum_sq"].shape[0] != self.channels:
            raise ValueError(f"state has {tuple(state['sum'].shape)} channels, expected ({self.channels},)")
        self.n = state["n"].to(self.device, torch.int64).clone()
        self._sum, self._sum_sq = ExactSums.from_tensor(state["sum"]), ExactSums.from_tensor(state["sum_sq"])

    def compute(self) -> dict[str, Any]:
        """``n``, per-channel ``mean``, ``var`` (population) and ``std`` as float64 tensors."""
        n = int(self.n)
        total, total_sq = self.sum, self.sum_sq
        mean = total / n if n else torch.full_like(total, float("nan"))
        var = total_sq / n - mean.pow(2) if n else torch.full_like(total, float("nan"))
        return {"n": n, "mean": mean, "var": var, "std": var.clamp_min(0).sqrt()}


@dataclass
class LatentPart:
    """What the ``codebook`` metric counts for some clips: token counts (discrete) or channel moments
    (continuous), the pixels those latents encode, and why nothing was counted (codec streams)."""

    usage: CodebookUsage | None = None
    stats: LatentStats | None = None
    pixels: int = 0
    clips: int = 0
    skipped: str | None = None


CODEBOOK_SPEC = {
    "name": "codebook",
    "tokens": "every token of every encoded clip (the tokenizer's frame padding and repeated tail frames included)",
    "used_fraction": "#{k : n_k > 0} / K over the evaluated set; value = 100 * used_fraction",
    "entropy": "H = -sum_k p_k ln p_k, p_k = n_k / N (order-0, over the evaluated set); perplexity = exp(H); "
               "entropy_bits = H / ln 2 per token",
    "bits_per_pixel": "pixels_per_token = encoded pixels (padded T x H x W) / tokens; bpp_entropy = entropy_bits / "
                      "pixels_per_token (an ideal order-0 entropy coder); bpp_nominal = log2(K) / pixels_per_token",
    "continuous": "value null; details.latent_stats: per-channel (dim 1) mean and population std over all positions",
    "merge": "integer token counts added across videos and shards (exact)",
}


@register_metric("codebook")
class CodebookMetric(LatentMetric):
    """Codebook use of discrete tokenizers (used fraction, perplexity, entropy-coded bpp); latent mean/std otherwise."""

    info = MetricInfo(label="Codebook use", unit="%", higher_is_better=True, precision=2, tolerance="1", kind="set",
                      reduction="100 x fraction of the K codes used at least once over all tokens of the run")

    def spec(self) -> dict[str, Any]:
        return dict(CODEBOOK_SPEC)

    # -------------------------------------------------------------- parts
    def new_part(self) -> LatentPart:
        return LatentPart()

    def add_parts(self, a: LatentPart, b: LatentPart) -> LatentPart:
        if b.usage is not None:
            a.usage = b.usage if a.usage is None else a.usage.merge(b.usage)
        if b.stats is not None:
            a.stats = b.stats if a.stats is None else a.stats.merge(b.stats)
        a.pixels += b.pixels
        a.clips += b.clips
        a.skipped = a.skipped or b.skipped
        return a

    def part_state(self, part: LatentPart) -> dict[str, Any]:
        out: dict[str, Any] = {"pixels": part.pixels, "clips": part.clips, "skipped": part.skipped or ""}
        if part.usage is not None:
            out["usage"] = part.usage.state_dict()
        if part.stats is not None:
            out["stats"] = part.stats.state_dict()
        return out

    def load_part(self, state: dict[str, Any]) -> LatentPart:
        part = LatentPart(pixels=int(state["pixels"]), clips=int(state["clips"]), skipped=state.get("skipped") or None)
        if "usage" in state:
            part.usage = CodebookUsage(int(state["usage"]["codebook_size"]), device=self.device)
            part.usage.load_state_dict(state["usage"])
        if "stats" in state:
            part.stats = LatentStats(int(state["stats"]["sum"].shape[0]), device=self.device)
            part.stats.load_state_dict(state["stats"])
        return part

    # -------------------------------------------------------------- accumulate
    def update_latent(self, latent: Any, tokenizer: Any, pixels: int, clip_ids: list[str]) -> None:
        n = len(clip_ids)
        size = getattr(tokenizer, "codebook_size", None)
        for idx in rows_by_video(clip_ids):
            part: LatentPart = self.part(clip_ids[idx[0]])
            part.pixels += pixels * len(idx) // n
            part.clips += len(idx)
            if not isinstance(latent, torch.Tensor) or latent.shape[0] != n:
                part.skipped = (f"the latent is a {type(latent).__name__}, not a tensor with one row per clip: "
                                "no token or channel statistics")
                continue
            z = latent[idx]
            if size is not None and not z.is_floating_point():
                if part.usage is None:
                    part.usage = CodebookUsage(int(size), device=self.device)
                part.usage.update(z)
            elif z.is_floating_point() and z.ndim >= 2:
                if part.stats is None:
                    part.stats = LatentStats(z.shape[1], device=self.device)
                part.stats.update(z)
            else:
                part.skipped = f"integer latent without a codebook size (tokenizer {getattr(tokenizer, 'name', '?')})"

    def compute(self, order: Sequence[str] | None = None) -> dict[str, Any]:
        part: LatentPart | None = self.total()
        if part is None:
            return {"value": None, "clips": 0}
        out: dict[str, Any] = {"clips": part.clips, "value": None}
        if part.usage is not None:
            tokens = int(part.usage.nonzero_counts()[1].sum())
            res = part.usage.compute(part.pixels / tokens if tokens and part.pixels else None)
            out["value"] = 100.0 * res["used_fraction"]
            out["details"] = {**res, "pixels": part.pixels}
        elif part.stats is not None:
            st = part.stats.compute()
            out["warning"] = "continuous latent (no codebook): no value; details.latent_stats holds per-channel mean/std"
            out["details"] = {"latent_stats": {"channels": part.stats.channels, "n": st["n"],
                                               "mean": st["mean"].cpu().tolist(), "std": st["std"].cpu().tolist()}}
        else:
            out["warning"] = part.skipped or "no latent seen"
        return out


__all__ = ["CODEBOOK_SPEC", "CodebookMetric", "CodebookUsage", "DENSE_MAX", "LatentPart", "LatentStats"]
