"""Float64 sums that are exact until read, so they never depend on the order or grouping of their terms.

A set metric's float sums are added in another order by a single run (video after video), by shards merged
afterwards and by a resumed run; plain float64 addition then differs in the last bits. :class:`ExactSums` keeps,
per element of a vector, its terms as a short list of non-overlapping float64 partials (Shewchuk's algorithm,
the one :func:`math.fsum` uses): every addition is error-free, so any terms in any order and grouping hold the
same exact number, and :meth:`ExactSums.values` rounds it once (correctly rounded, as ``math.fsum``).
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch


def add_exact(partials: list[float], x: float) -> None:
    """Add ``x`` to the exact sum ``partials`` (non-overlapping, increasing magnitude) in place."""
    if not (math.isfinite(x) and all(map(math.isfinite, partials))):  # inf/NaN: no exact sum to keep
        partials[:] = [sum(partials, x)]
        return
    i = 0
    for y in partials:
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo:
            partials[i] = lo
            i += 1
        x = hi
    partials[i:] = [x]


class ExactSums:
    """Per-element exact sums of float64 vectors: ``add`` a vector, ``merge`` another, ``values`` rounds once."""

    def __init__(self, n: int = 0):
        self.partials: list[list[float]] = [[] for _ in range(n)]

    def __len__(self) -> int:
        return len(self.partials)

    def grow(self, n: int) -> None:
        """At least ``n`` elements (new ones hold 0)."""
        self.partials += [[] for _ in range(n - len(self.partials))]

    def add(self, values: torch.Tensor | Sequence[float]) -> None:
        """Add ``values`` (1-D) to the first ``len(values)`` elements."""
        values = values.tolist() if isinstance(values, torch.Tensor) else list(values)
        self.grow(len(values))
        for row, x in zip(self.partials, values):
            if x:
                add_exact(row, float(x))

    def merge(self, other: "ExactSums") -> None:
        """Add ``other``'s sums (exactly)."""
        self.grow(len(other))
        for row, terms in zip(self.partials, other.partials):
            for x in terms:
                add_exact(row, x)

    def values(self, device: str | torch.device | None = None) -> torch.Tensor:
        """(n,) float64: each exact sum, correctly rounded."""
        return torch.tensor([math.fsum(r) for r in self.partials], dtype=torch.float64, device=device)

    def pooled(self, rows: Iterable[int]) -> float:
        """The exact sum over several elements, correctly rounded."""
        return math.fsum(x for i in rows for x in self.partials[i])

    def to_tensor(self) -> torch.Tensor:
        """(n, m) float64: each element's partials, zero-padded (zeros add nothing): a state for ``torch.save``."""
        m = max((len(r) for r in self.partials), default=0)
        return torch.tensor([r + [0.0] * (m - len(r)) for r in self.partials], dtype=torch.float64).reshape(len(self), m)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> "ExactSums":
        """The inverse of :meth:`to_tensor`; a 1-D tensor (plain float64 sums, an older state) is one partial each."""
        t = t.detach().double().cpu()
        out = cls()
        out.partials = [[x for x in row if x] for row in (t.reshape(-1, 1) if t.ndim == 1 else t).tolist()]
        return out


__all__ = ["ExactSums", "add_exact"]
