"""Precision: one type for the runner and every plugin, and the scope it means.

``fp32`` is true fp32: autocast is *disabled* inside its scope (so a plugin forced to fp32 really
runs fp32 even inside a bf16 run) and TF32 is off on CUDA. ``tf32`` allows TF32 matmuls/convs;
``bf16`` / ``fp16`` autocast. Global torch flags are set only inside a scope and restored after.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from .errors import check_choice


@dataclass(frozen=True)
class Precision:
    name: str
    dtype: torch.dtype
    allow_tf32: bool

    @property
    def autocast(self) -> bool:
        return self.dtype is not torch.float32

    @contextlib.contextmanager
    def scope(self, device: torch.device | str) -> Iterator[None]:
        """Autocast as this precision says (disabled for fp32/tf32) with TF32 set and restored."""
        dev = torch.device(device)
        with tf32(self.allow_tf32), torch.autocast(device_type=dev.type, dtype=self.dtype if self.autocast else torch.bfloat16,
                                                    enabled=self.autocast):
            yield


PRECISIONS: dict[str, Precision] = {
    "fp32": Precision("fp32", torch.float32, False),
    "tf32": Precision("tf32", torch.float32, True),
    "bf16": Precision("bf16", torch.bfloat16, False),
    "fp16": Precision("fp16", torch.float16, False),
}


def get_precision(name: str | Precision | None, label: str = "precision") -> Precision:
    """The Precision called ``name`` (None: fp32); an unknown name is a one-line ConfigError."""
    if isinstance(name, Precision):
        return name
    return PRECISIONS[str(check_choice(label, name or "fp32", PRECISIONS))]


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """Set TF32 for cuDNN convolutions and CUDA matmuls inside the block, then restore."""
    cudnn, matmul = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn, matmul


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Metric networks' reference numbers are fp32: on an H100, TF32 moved I3D logits by ~1.6e-2
    (past the 1e-3 parity with the TF reference); full fp32 stays within ~3e-5. Autocast is off too."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(PRECISIONS["fp32"].scope("cpu"))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast(device_type="cuda", enabled=False))
        yield
