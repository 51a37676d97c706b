"""glibc malloc's mmap threshold for the CLI's runs, from ``MALLOC_MMAP_THRESHOLD_``, and handing free heap
memory back between batches (:func:`release_free_memory`).

glibc raises its mmap threshold each time a large block is freed (up to 32 MB), after which blocks up to
that size come from per-thread heaps that keep freed memory. A run allocates and frees blocks of every
size on two threads (model, overlapped scoring), and those heaps held a few hundred MB at the peak. A
fixed threshold stops the raising: smaller blocks reuse heap memory, larger ones go back to the system when
freed. Measured on the issue's CPU workload (ch=12 VidTok, 640x272, PSNR/SSIM/LPIPS-VGG, 68 frames): fixed
at 16 MB, peak RSS 2646 -> 2391 MB at the same wall time (session 5); at 4 MB, 1771-1837 -> 1661-1684 MiB
against 16 MB, wall 131 / 144 s against 127 / 144 s in alternating runs (session 8; the decoder's one-frame
pieces, 8-17 MB, had fragmented the heap at 16 MB; the kernel's page faults cost ~3% more CPU).
"""
from __future__ import annotations

import ctypes
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ENV = "MALLOC_MMAP_THRESHOLD_"  # glibc's own variable: child processes read it at their start
DEFAULT_BYTES = 4 << 20
_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)


def _libc(name: str):
    """A C library function among the symbols the process already has (glibc's, on Linux: no library search
    at every CLI start), or None."""
    try:
        return getattr(ctypes.CDLL(None), name, None)
    except (OSError, TypeError):  # TypeError: platforms where CDLL takes no None
        return None


def set_mmap_threshold() -> int | None:
    """Apply ``MALLOC_MMAP_THRESHOLD_`` (default 4 MB, set in the environment for child processes) to this
    process; returns the bytes applied, or None where the C library is not glibc or refuses the value."""
    os.environ.setdefault(ENV, str(DEFAULT_BYTES))
    try:
        value = int(os.environ[ENV])
    except ValueError:
        return None  # glibc ignores a malformed value too
    mallopt = _libc("mallopt")
    if mallopt is None or value < 0:
        return None
    return value if mallopt(_M_MMAP_THRESHOLD, value) == 1 else None


def release_free_memory() -> bool:
    """Hand memory that glibc's heaps hold free back to the system (``malloc_trim(0)``: every arena, holes
    included); False where the C library is not glibc.

    Blocks under the mmap threshold that a batch allocated and freed stay in the heap of the thread that freed
    them, and with the model and the overlapped scoring on two threads their free pages added up under the
    run's peak. Called after each batch's model call and its scoring on CPU runs: on the issue's CPU workload
    (68 frames, 640x272) peak RSS 2174 -> 1998 MB, the RSS while only the last clip was scored 1481 -> 1217 MB.
    """
    trim = _libc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def release_after_batch(device: "torch.device") -> bool:
    """:func:`release_free_memory` where a run's device is the CPU (the host memory is its working memory);
    the rule the model stage and the runner share."""
    return device.type == "cpu" and release_free_memory()
