"""Precision names and the autocast context they mean (shared by the runner and plugins)."""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

#: fp32 is true fp32 (the runner keeps TF32 off on CUDA); tf32 allows TF32 matmuls/convs
PRECISIONS = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@contextlib.contextmanager
def autocast(device: torch.device, precision: str | None) -> Iterator[None]:
    """Autocast to bf16/fp16 on ``device``; a no-op for fp32/tf32/None."""
    dtype = PRECISIONS[precision or "fp32"]
    if dtype is torch.float32:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
