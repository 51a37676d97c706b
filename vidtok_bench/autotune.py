"""cuDNN autotuning for calls whose input shape repeats: one rule for tokenizers and metric networks.

``torch.backends.cudnn.benchmark`` times every candidate algorithm the first time a shape is seen and
keeps the fastest; without it cuDNN's heuristics choose. It was suspected for LPIPS-VGG's slow per-clip
call on the H100 (30 frames/s against 287 for a batch of 64), but measured there it made no difference
(30 vs 31). A run's clips have one shape, so the search is paid once; whole videos of varying length
(tiled long-video modes) would pay it per length, so a call is autotuned only when it repeats the
previous call's shape, and otherwise the caller's setting stands.

Measured on an H100 (2026-11-27): this rule does not search in practice. PyTorch's cuDNN (v8 API) caches the
plan a shape's first call chose in a per-thread cache keyed without the benchmark flag and looks there
first, so the repeated, "autotuned" calls reuse the heuristics' plan (LPIPS-VGG's 17-frame call: FFT plans,
53-58 frames/s, against 377-380 when a thread's first call searches). Searching from the first call was
tried and not kept yet: VidTok's fp32 search costs ~69 s per process, and the CUDA-vs-CPU metric test failed
under it for a reason not yet seen (docs/performance.md).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch


class StaticShapeAutotune:
    """Per call kind, remembers the last input shape; ``force`` (True/False) overrides the rule."""

    def __init__(self, force: bool | None = None) -> None:
        self.force = force
        self._last: dict[str, tuple[int, ...]] = {}

    def decide(self, kind: str, shape: tuple[int, ...]) -> bool | None:
        """True: autotune this call; False: do not; None: leave the caller's setting."""
        static = self._last.get(kind) == shape
        self._last[kind] = shape
        if self.force is not None:
            return self.force
        return True if static else None

    @contextlib.contextmanager
    def scope(self, device: torch.device, kind: str, shape: tuple[int, ...]) -> Iterator[None]:
        """``cudnn.benchmark`` as :meth:`decide` says for a CUDA call, restored afterwards; nothing elsewhere."""
        bench = self.decide(kind, tuple(shape))
        old = torch.backends.cudnn.benchmark
        if device.type == "cuda" and bench is not None:
            torch.backends.cudnn.benchmark = bench
        try:
            yield
        finally:
            torch.backends.cudnn.benchmark = old

    def reset(self) -> None:
        self._last.clear()
